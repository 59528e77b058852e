"""Every config in configs/ validates, and its dry run names every model it would load."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from qrdistill.checks import check_run
from qrdistill.config import load_run_config

CONFIGS = sorted(
    p
    for p in (Path(__file__).parents[2] / "configs").glob("*.yaml")
    if not p.name.startswith("accelerate")
)


def test_configs_are_shipped():
    assert {p.name for p in CONFIGS} == {
        "paper.yaml",
        "single_gpu.yaml",
        "multi_gpu.yaml",
        "reasoning_teacher.yaml",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_and_dry_run_lists_its_models(path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_run_config(path)
    for name in cfg.methods:
        cfg.method_train_config(name)
    console = Console(record=True, width=200)
    check_run(cfg, console)
    text = console.export_text()
    for student in cfg.train.students:
        assert student.model in text
    assert cfg.generate.backend.model in text
    # Hub models are not downloaded here: the dry run says so instead of failing obscurely.
    assert "HF_HUB_OFFLINE=1, cannot download" in text


def test_paper_config_matches_the_paper():
    cfg = load_run_config(CONFIGS[[p.name for p in CONFIGS].index("paper.yaml")])
    lrs = {s.model: s.lr for s in cfg.train.students}
    assert lrs == {"mistralai/Mistral-7B-Instruct-v0.3": 5e-6, "google/gemma-7b-it": 2e-4}
    assert cfg.train.batch_size == 8
    assert cfg.generate.backend.temperature == 0.8 and cfg.generate.backend.max_tokens == 1024
    assert len(cfg.generate.styles) == 6
    assert cfg.generate.backend.api_key_env == "GEMINI_API_KEY"
    assert set(cfg.methods) >= {
        "qr_distill",
        "sft_single",
        "answer_aug",
        "no_filter",
        "no_routing",
        "no_peer",
    }


def test_reasoning_teacher_config_keeps_the_thinking_and_counts_it():
    cfg = load_run_config(CONFIGS[[p.name for p in CONFIGS].index("reasoning_teacher.yaml")])
    teacher = cfg.generate.backend
    assert (teacher.thinking, teacher.stream, cfg.generate.reasoning) == (
        "auto",
        True,
        "styled_answer",
    )
    assert teacher.expected_completion_tokens < teacher.max_tokens
    assert cfg.filter.judge.thinking == "auto"  # the verdict is read from the judge's answer
