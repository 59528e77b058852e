"""The settings that make methods comparable: the answer budget, the baselines' data, the single
path's style."""

from __future__ import annotations

import pytest

from qrdistill.config import RunConfig, load_run_config
from qrdistill.errors import ConfigError
from qrdistill.pipeline import Pipeline
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import validate_config

STUDENTS = [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]


def run_config(**sections) -> RunConfig:
    return validate_config(RunConfig, {"train": {"students": STUDENTS}, **sections}, "test")


def test_answer_budget_defaults_to_the_teachers():
    cfg = run_config(generate={"backend": {"max_tokens": 300}})
    assert cfg.evaluate.max_new_tokens == 300
    assert run_config().evaluate.max_new_tokens == 1024  # the teacher's default
    explicit = run_config(
        generate={"backend": {"max_tokens": 300}}, evaluate={"max_new_tokens": 400}
    )
    assert explicit.evaluate.max_new_tokens == 400


def test_an_answer_budget_below_the_teachers_is_an_error():
    with pytest.raises(ConfigError, match=r"evaluate.max_new_tokens is 96.*max_tokens \(128\)"):
        run_config(generate={"backend": {"max_tokens": 128}}, evaluate={"max_new_tokens": 96})


def test_shipped_quickstart_answers_with_the_teachers_budget():
    cfg = load_run_config(None)
    assert cfg.evaluate.max_new_tokens >= cfg.generate.backend.max_tokens


def test_baselines_read_every_path_and_qr_distill_the_filtered_ones(tmp_path):
    methods = ["qr_distill", "no_peer", "no_filter", "sft_single", "answer_aug", "step_by_step"]
    cfg = run_config(run_dir=str(tmp_path), methods={m: {} for m in methods})
    pipeline = Pipeline(cfg)
    files = {m: pipeline.training_paths(m).relative_to(tmp_path).as_posix() for m in methods}
    assert files == {
        "qr_distill": "filter/kept.jsonl",
        "no_peer": "filter/kept.jsonl",
        "no_filter": "generate/paths.jsonl",
        "sft_single": "generate/paths.jsonl",
        "answer_aug": "generate/paths.jsonl",
        "step_by_step": "generate/paths.jsonl",
    }
    # A user's own baseline can still ask for the judge's cut.
    mine = run_config(
        run_dir=str(tmp_path), methods={"mine": {"train": {"objective": "sft_single"}}}
    )
    assert Pipeline(mine).training_paths("mine").name == "kept.jsonl"


def test_single_path_style_defaults_to_chain_of_thought():
    cfg = validate_config(TrainConfig, {"students": STUDENTS}, "train")
    assert cfg.single_path_style == "chain_of_thought"
