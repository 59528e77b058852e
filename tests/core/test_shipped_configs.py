"""Every config in configs/ validates, and its dry run names every model it would load."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from qrdistill.checks import check_run
from qrdistill.config import load_run_config
from qrdistill.data.catalogue import HUB_SOURCES

CONFIGS = sorted(
    p
    for p in (Path(__file__).parents[2] / "configs").glob("*.yaml")
    if not p.name.startswith("accelerate")
)


def test_configs_are_shipped():
    assert {p.name for p in CONFIGS} == {
        "paper.yaml",
        "paper_table4.yaml",
        "paper_sample_efficiency.yaml",
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
    for task_cfg in (cfg.suite_configs() or {"": cfg}).values():  # a suite: every task's
        check_run(task_cfg, console)
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
    assert set(cfg.methods) == {
        "qr_distill",
        "sft_single",
        "step_by_step",
        "answer_aug",
        "revthink",
        "no_filter",
        "no_routing",
        "no_peer",
    }
    tasks = cfg.suite_configs()
    assert {name: t.data.task for name, t in tasks.items()} == {
        t: t for t in ("strategyqa", "arc_challenge", "math", "anli", "date_understanding")
    }
    # The hub tasks read the catalogue's data sets (`qrdistill tasks` prints the same blocks).
    for name, source in HUB_SOURCES.items():
        assert tasks[name].data.source.model_dump() == source.model_dump()
    assert {name: t.train.epochs for name, t in tasks.items()} == {
        "strategyqa": 10,
        "arc_challenge": 10,
        "math": 3,
        "anli": 10,
        "date_understanding": 10,
    }
    # The ablations where the paper's Table 2 has them.
    ablated = {name for name, t in tasks.items() if "no_peer" in t.methods}
    assert ablated == {"arc_challenge", "anli", "date_understanding"}
    assert all(t.run_dir == cfg.run_dir / name for name, t in tasks.items())


def test_table4_and_sample_efficiency_configs_are_the_papers_settings():
    table4 = load_run_config(CONFIGS[[p.name for p in CONFIGS].index("paper_table4.yaml")])
    assert [s.model for s in table4.train.students] == [
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        "Qwen/Qwen2.5-3B-Instruct",
    ]
    assert {t.data.task for t in table4.suite_configs().values()} == {
        "anli",
        "arc_challenge",
        "date_understanding",
    }
    efficiency = load_run_config(
        CONFIGS[[p.name for p in CONFIGS].index("paper_sample_efficiency.yaml")]
    )
    tasks = efficiency.suite_configs()
    assert {name: (t.data.task, t.data.train_fraction) for name, t in tasks.items()} == {
        "date_understanding": ("date_understanding", 1.0),
        "date_understanding_30": ("date_understanding", 0.3),
    }
    full, part = tasks.values()
    assert full.data.model_copy(update={"train_fraction": 0.3}) == part.data  # all else equal


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
