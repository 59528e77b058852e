"""Shared local generation: left padding is right, only new tokens are decoded, stops are honoured."""

from __future__ import annotations

import pytest
import torch

from qrdistill.models import generate, load_causal_lm, render_prompt


@pytest.fixture(scope="module")
def student(tiny_students):
    torch.manual_seed(0)
    return load_causal_lm(str(tiny_students[0]))


PROMPTS = [
    "Question: how many clips?",
    "Answer briefly: 48 + 24 = ?",
    "Let's think step by step about a long question " * 3,
]


def test_batched_equals_one_by_one(student):
    model, tok = student
    prompts = [render_prompt(tok, p) for p in PROMPTS]
    batched = generate(model, tok, prompts, max_new_tokens=12, batch_size=3)
    single = [generate(model, tok, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in single]
    assert all(g.mean_logprob is not None and g.mean_logprob <= 0 for g in batched)


def test_only_new_tokens_are_decoded_and_padding_side_is_restored(student):
    model, tok = student
    tok.padding_side = "right"
    prompt = render_prompt(tok, PROMPTS[0])
    out = generate(model, tok, [prompt], max_new_tokens=8)[0]
    assert "Question: how many clips?" not in out.text
    assert out.prompt_tokens == len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert out.completion_tokens <= 8
    assert tok.padding_side == "right"


def test_stop_string_cuts_the_text(student):
    model, tok = student
    prompt = render_prompt(tok, PROMPTS[1])
    # A random tiny model's greedy output is mostly special tokens; sampling with a seed gives text.
    sample = dict(max_new_tokens=16, temperature=1.0, seed=0)
    full = generate(model, tok, [prompt], **sample)[0].text
    assert len(full) >= 6, full
    stop = full[3:6]
    cut = generate(model, tok, [prompt], stop=[stop], **sample)[0].text
    assert stop not in cut
    assert full.startswith(cut)


def test_render_prompt_uses_chat_template_only_when_present(tiny_students):
    from qrdistill.models import load_tokenizer

    chat = load_tokenizer(str(tiny_students[0]))
    plain = load_tokenizer(str(tiny_students[1]))
    assert render_prompt(chat, "hi") == "<|user|>\nhi<|end|>\n<|assistant|>\n"
    assert render_prompt(plain, "hi") == "hi\n\n"
