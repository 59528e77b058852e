"""The vLLM engine answers as the hf engine does: the same prompt token ids (no second BOS) and
the same stop rule. vLLM needs a GPU, so `vllm` is replaced by a NAMED STAND-IN: `StandInLLM`
records what reaches the model (a text prompt is tokenized as vLLM tokenizes one, special tokens
added) and "generates" a scripted completion, token by token in the model's own tokenizer."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
import torch

from qrdistill.evaluation.stopping import stop_rule
from qrdistill.llm import BackendConfig, make_backend, make_request
from qrdistill.llm.local import VLLMEngine
from qrdistill.models.generation import _StopWhen
from qrdistill.models.loading import render_prompt
from qrdistill.tasks import get_task

# A candidate first, the verified answer, then an invented next exchange with another answer.
COMPLETION = (
    "Half of 48 is \\boxed{24}.\nWith April: 48 + 24 = 72, so \\boxed{72}.\n"
    "Question: And June?\nThe answer is \\boxed{5}."
)


class StandInSamplingParams:
    """Records the sampling parameters it was made with."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class StandInLLM:
    """A stand-in for `vllm.LLM`: loads the model's tokenizer only, records each request's prompt
    token ids and parameters, and answers every request with COMPLETION (cut at `max_tokens`);
    the log-probability of the i-th completion token is -0.1 * (i + 1)."""

    last: StandInLLM | None = None

    def __init__(self, model: str, dtype: str, trust_remote_code: bool, **kwargs):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.requests: list[tuple[list[int], StandInSamplingParams]] = []
        StandInLLM.last = self

    def generate(self, prompts, params, use_tqdm=True, lora_request=None):
        params = params if isinstance(params, list) else [params] * len(prompts)
        outputs = []
        for prompt, param in zip(prompts, params):
            # vLLM tokenizes a text prompt with the tokenizer's special tokens (a BOS for most).
            ids = (
                prompt["prompt_token_ids"]
                if isinstance(prompt, dict)
                else self.tokenizer(prompt)["input_ids"]
            )
            self.requests.append((list(ids), param))
            tokens = self.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
            tokens = tokens[: param.max_tokens]
            completion = SimpleNamespace(
                text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                token_ids=tokens,
                cumulative_logprob=sum(-0.1 * (i + 1) for i in range(len(tokens))),
                logprobs=[
                    {t: SimpleNamespace(logprob=-0.1 * (i + 1))} for i, t in enumerate(tokens)
                ],
            )
            outputs.append(SimpleNamespace(prompt_token_ids=list(ids), outputs=[completion]))
        return outputs


@pytest.fixture
def standin_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = StandInLLM, StandInSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture(scope="module")
def bos_model(tmp_path_factory):
    """A tokenizer like Llama-3's or Gemma's: it adds a BOS, and its chat template writes one."""
    from tokenizers import processors

    from tiny_models import CHAT_TEMPLATE, make_tokenizer

    tokenizer = make_tokenizer(400, chat=True)
    tokenizer.add_special_tokens({"bos_token": "<bos>"})
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.bos_token_id)]
    )
    tokenizer.chat_template = "{{ bos_token }}" + CHAT_TEMPLATE
    folder = tmp_path_factory.mktemp("bos_model")
    tokenizer.save_pretrained(folder)
    return folder, tokenizer


def test_the_prompt_reaches_vllm_with_the_hf_engines_token_ids(standin_vllm, bos_model):
    folder, tokenizer = bos_model
    engine = VLLMEngine(str(folder))
    rendered = engine.render("How many clips?")
    assert rendered == render_prompt(tokenizer, "How many clips?")
    assert tokenizer(rendered)["input_ids"][:2] == [tokenizer.bos_token_id] * 2  # the trap
    engine.generate([rendered], max_new_tokens=64)
    ids, _ = StandInLLM.last.requests[0]
    # The ids the hf engine generates from (`models.generate` tokenizes rendered prompts so).
    assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id


def test_vllm_stops_where_the_hf_engine_stops(standin_vllm, bos_model):
    folder, tokenizer = bos_model
    rule = stop_rule(get_task("gsm8k"), after_answer=True, on_loop=True)
    engine = VLLMEngine(str(folder))
    [answer] = engine.generate(
        [engine.render("How many clips?")], max_new_tokens=200, stop_when=rule
    )

    # Where hf's own stopping criterion ends the row, token by token over the same completion.
    tokens = tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    criterion = _StopWhen(tokenizer, 0, rule)
    hf_length = next(
        n for n in range(1, len(tokens) + 1) if criterion(torch.tensor([tokens[:n]]), None)[0]
    )
    assert answer.completion_tokens == hf_length < len(tokens)
    assert answer.text == tokenizer.decode(tokens[:hf_length], skip_special_tokens=True).strip()
    assert answer.text.endswith("\nQuestion:")
    assert get_task("gsm8k").extract_answer(answer.text) == "72"  # not the candidate, not the 5
    assert answer.mean_logprob == pytest.approx(-0.1 * (hf_length + 1) / 2)
    _, params = StandInLLM.last.requests[0]
    assert (params.temperature, params.max_tokens, params.logprobs, params.stop) == (
        0,
        200,
        0,
        None,
    )

    # Without a rule the completion is kept whole, as the hf engine would keep it.
    [whole] = engine.generate([engine.render("How many clips?")], max_new_tokens=200)
    assert whole.completion_tokens == len(tokens) and whole.text.endswith("\\boxed{5}.")


def test_vllm_backend_sends_token_ids_with_a_seed_per_request(standin_vllm, bos_model):
    folder, tokenizer = bos_model
    cfg = BackendConfig(kind="vllm", model=str(folder), max_tokens=32, seed=3)
    requests = [make_request(cfg, f"Question {i}?", 0, f"q{i}") for i in range(2)]
    results = list(make_backend(cfg).run(requests))
    seen = StandInLLM.last.requests
    for request, (ids, params) in zip(requests, seen):
        rendered = render_prompt(tokenizer, request.prompt)
        assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert params.seed == request.seed and params.max_tokens == 32
    assert [r for r, _ in results] == requests
    assert all(g.completion_tokens == 32 for _, g in results)
