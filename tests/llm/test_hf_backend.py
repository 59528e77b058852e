"""The `hf` backend with a tiny local model: batched generation, records, resume without loading."""

from __future__ import annotations

import pytest

from qrdistill.llm import BackendConfig, backends
from qrdistill.models import load_tokenizer, render_prompt
from qrdistill.records import ReasoningPath
from qrdistill.teacher import BUILTIN_STYLES, GenerateConfig, generate_paths
from qrdistill.teacher.styles import apply_style
from qrdistill.utils.io import read_json, read_jsonl_as


def test_hf_backend_writes_every_path_and_a_rerun_loads_no_model(
    tiny_students, examples_path, tmp_path, monkeypatch
):
    folder = tiny_students[0]  # llama with a chat template
    cfg = GenerateConfig(
        backend=BackendConfig(
            kind="hf", model=str(folder), max_tokens=8, batch_size=3, dtype="float32"
        ),
        styles=["vanilla", "program"],
        samples_per_style=2,
        show_progress=False,
    )
    paths = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)

    assert [(p.question_id, p.style, p.sample_index) for p in paths] == [
        (q, s, i) for q in ("q1", "q2") for s in ("vanilla", "program") for i in (0, 1)
    ]
    tokenizer = load_tokenizer(str(folder))
    for path in paths:
        seen = render_prompt(tokenizer, apply_style(BUILTIN_STYLES[path.style], path.prompt))
        assert "<|assistant|>" in seen  # the model's chat template was applied
        assert path.usage.prompt_tokens == len(
            tokenizer(seen, add_special_tokens=False)["input_ids"]
        )
        assert 0 <= path.usage.completion_tokens <= 8
        assert (path.backend, path.model) == ("hf", str(folder))
    usage = read_json(tmp_path / "gen" / "usage.json")
    assert usage["total"]["paths"] == 8
    assert usage["total"]["completion_tokens"] == sum(p.usage.completion_tokens for p in paths)

    def no_model(cfg):
        raise AssertionError("a fully cached rerun must not load the model")

    monkeypatch.setattr(backends, "HFBackend", no_model)
    again = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)
    assert again == paths


def test_hf_backend_names_a_model_it_cannot_load(examples_path, tmp_path):
    cfg = GenerateConfig(
        backend=BackendConfig(kind="hf", model=str(tmp_path / "missing")),
        styles=["vanilla"],
        show_progress=False,
    )
    with pytest.raises(backends.BackendError, match="missing"):
        generate_paths(cfg, examples_path, tmp_path / "gen")
    assert not (tmp_path / "gen").exists()
