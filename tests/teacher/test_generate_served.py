"""Generation through the `openai` backend against a real `transformers serve` (SmolLM2)."""

from __future__ import annotations

import pytest

from qrdistill.records import Example, ReasoningPath
from qrdistill.tasks import get_task
from qrdistill.teacher import BUILTIN_STYLES, GenerateConfig, generate_paths
from qrdistill.teacher.styles import apply_style
from qrdistill.utils.io import read_json, read_jsonl_as
from served_model import openai_backend

pytestmark = pytest.mark.server

STYLES = ["vanilla", "program", "backward"]
SECRET = "sk-test-do-not-leak-4242"


def test_paths_in_several_styles_are_stored_field_by_field(
    served_model, proxy, examples_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("QRD_TEST_KEY", SECRET)
    backend = openai_backend(proxy.base_url, served_model.model, api_key_env="QRD_TEST_KEY")
    cfg = GenerateConfig(backend=backend, styles=STYLES, show_progress=False)
    out = tmp_path / "gen"
    paths_path = generate_paths(cfg, examples_path, out)

    paths = read_jsonl_as(paths_path, ReasoningPath)
    assert [(p.question_id, p.style, p.sample_index) for p in paths] == [
        (q, s, 0) for q in ("q1", "q2") for s in STYLES
    ]
    task = get_task("gsm8k")
    examples = {e.id: e for e in read_jsonl_as(examples_path, Example)}
    sent = {body["messages"][0]["content"]: body for body in proxy.completions()}
    assert len(sent) == 6
    for path in paths:
        example = examples[path.question_id]
        assert path.id == f"{path.question_id}::{path.style}::0"
        assert (path.task, path.gold) == ("gsm8k", example.gold)
        assert path.prompt == task.build_prompt(example)  # students train on the base prompt
        body = sent[
            apply_style(BUILTIN_STYLES[path.style], path.prompt)
        ]  # the teacher saw the style
        assert (body["model"], body["max_tokens"], body["temperature"]) == (
            served_model.model,
            24,
            0.8,
        )
        assert path.text.strip()
        assert path.answer == task.extract_answer(path.text)
        assert path.correct == task.is_correct(path.text, example.gold)
        assert path.usage.prompt_tokens > 0 and 0 < path.usage.completion_tokens <= 24
        assert (path.backend, path.model) == ("openai", served_model.model)
        assert path.judge is None and path.kept is None
    assert len({body["seed"] for body in sent.values()}) == 6  # every request its own seed

    usage = read_json(out / "usage.json")
    assert list(usage["per_style"]) == STYLES
    for style in STYLES:
        group = [p for p in paths if p.style == style]
        assert usage["per_style"][style] == {
            "paths": 2,
            "prompt_tokens": sum(p.usage.prompt_tokens for p in group),
            "completion_tokens": sum(p.usage.completion_tokens for p in group),
            "reasoning_tokens": 0,
            "total_tokens": sum(p.usage.prompt_tokens + p.usage.completion_tokens for p in group),
            "usd": None,
        }

    # The key reached the server and nothing else: not the outputs, not the cache.
    assert {r["authorization"] for r in proxy.requests} == {f"Bearer {SECRET}"}
    for file in out.iterdir():
        assert SECRET.encode() not in file.read_bytes(), file.name

    # A rerun (here with prices, which do not change what is generated) asks the server nothing.
    before = paths_path.read_text()
    priced = cfg.model_copy(
        update={
            "backend": backend.model_copy(
                update={"price_input_per_1m": 2.0, "price_output_per_1m": 8.0}
            )
        }
    )
    generate_paths(priced, examples_path, out)
    assert len(proxy.completions()) == 6
    assert paths_path.read_text() == before
    total = read_json(out / "usage.json")["total"]
    assert total["usd"] == round(
        (total["prompt_tokens"] * 2.0 + total["completion_tokens"] * 8.0) / 1e6, 6
    )


def test_more_samples_per_style_asks_only_for_the_new_samples(
    served_model, proxy, examples_path, tmp_path
):
    cfg = GenerateConfig(
        backend=openai_backend(proxy.base_url, served_model.model),
        styles=["vanilla"],
        show_progress=False,
    )
    generate_paths(cfg, examples_path, tmp_path / "gen")
    first = proxy.completions()
    cfg.samples_per_style = 2
    paths = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)
    second = proxy.completions()[len(first) :]
    assert [(p.question_id, p.sample_index) for p in paths] == [
        ("q1", 0),
        ("q1", 1),
        ("q2", 0),
        ("q2", 1),
    ]
    assert len(first) == 2 and len(second) == 2
    # Same prompts, new seeds: sample 1 is a new draw, not a repeat of sample 0.
    assert {b["messages"][0]["content"] for b in second} == {
        b["messages"][0]["content"] for b in first
    }
    assert not {b["seed"] for b in second} & {b["seed"] for b in first}
