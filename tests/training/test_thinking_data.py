"""What students learn from a reasoning teacher's path (`ReasoningPath.learn`): the answer text,
or the thinking then the answer, in each student's own thinking format where its chat template
has one, else a plain <think> block; and a path too long for max_length is counted, not cut."""

from __future__ import annotations

import copy

from training_paths import make_paths

from qrdistill.models import load_tokenizer, render_prompt
from qrdistill.training.data import IGNORE, build_data, select_items
from qrdistill.utils.io import write_jsonl

# A chat template that writes an assistant turn's `reasoning_content`, as Qwen3's does.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m.reasoning_content %}[thought] {{ m.reasoning_content }} [/thought]\n{% endif %}"
    "{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def thinking_paths(learn: str) -> list:
    paths = make_paths(2)
    for i, path in enumerate(paths):
        path.thinking = f"Let me add: step {i} checks it."
        path.learn = learn
    return paths


def students(tiny_students) -> dict:
    """Three students: one whose template writes a thinking, one whose template does not, one
    with no template."""
    chat, plain = (load_tokenizer(str(folder)) for folder in tiny_students)
    thinker = copy.deepcopy(chat)
    thinker.chat_template = THINKING_TEMPLATE
    return {"thinker": thinker, "chat": chat, "plain": plain}


def responses(data, tokenizers) -> dict[str, list[str]]:
    """The text each student learns per item: its labelled tokens, EOS left off."""
    out = {}
    for name, tok in tokenizers.items():
        out[name] = []
        for enc in data.encoded[name]:
            learned = [t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE]
            assert learned[-1] == tok.eos_token_id
            out[name].append(tok.decode(learned[:-1]))
    return out


def test_thinking_is_learned_in_each_students_own_format(tiny_students, make_config, tmp_path):
    toks = students(tiny_students)
    paths = thinking_paths("thinking_and_answer")
    write_jsonl(tmp_path / "kept.jsonl", paths)
    data = build_data(tmp_path / "kept.jsonl", make_config(max_length=512), toks)
    learned = responses(data, toks)
    for i, path in enumerate(paths):
        assert data.items[i].route_text == f"<think>\n{path.thinking}\n</think>\n\n{path.text}"
        assert learned["thinker"][i] == f"[thought] {path.thinking} [/thought]\n{path.text}"
        for name in ("chat", "plain"):
            assert learned[name][i] == f"<think>\n{path.thinking}\n</think>\n\n{path.text}"
    # The prompt is the one each student answers at evaluation, whatever it learns.
    for name, tok in toks.items():
        prompt = tok(render_prompt(tok, paths[0].prompt), add_special_tokens=False)["input_ids"]
        assert data.encoded[name][0].input_ids[: len(prompt)] == prompt


def test_the_answer_alone_is_learned_when_that_is_the_choice(tiny_students, make_config, tmp_path):
    """The null twin: the same paths with learn "answer" teach the answer text only."""
    toks = students(tiny_students)
    paths = thinking_paths("answer")
    write_jsonl(tmp_path / "kept.jsonl", paths)
    data = build_data(tmp_path / "kept.jsonl", make_config(max_length=512), toks)
    learned = responses(data, toks)
    for name in toks:
        assert learned[name] == [p.text for p in paths]
    assert [item.route_text for item in data.items] == [p.text for p in paths]


def test_step_by_step_learns_the_thinking_in_its_rationale_only(make_config):
    paths = thinking_paths("thinking_and_answer")
    items, _ = select_items(paths, make_config(objective="step_by_step"))
    rationale, answer = items[0], items[1]
    assert (rationale.task, rationale.thinking, rationale.response) == (
        "rationale",
        paths[0].thinking,
        paths[0].text,
    )
    assert (answer.task, answer.thinking, answer.response) == ("answer", "", paths[0].answer)


def test_paths_too_long_for_max_length_are_counted_per_style(tiny_students, make_config, tmp_path):
    toks = students(tiny_students)
    paths = thinking_paths("thinking_and_answer")
    paths[0].thinking = "a long thought " * 60  # longer than max_length for every student
    write_jsonl(tmp_path / "kept.jsonl", paths)
    data = build_data(tmp_path / "kept.jsonl", make_config(max_length=160), toks)
    assert data.counts["items_dropped"] == 1
    assert data.counts["items_dropped_per_style"] == {paths[0].style: 1}
    assert data.counts["dropped_overlength"] == {"thinker": 1, "chat": 1, "plain": 1}
    assert paths[0].id not in {item.path_id for item in data.items}
    assert len(data) == len(paths) - 1
