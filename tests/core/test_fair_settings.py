"""The settings that make methods comparable: the answer budget, the baselines' data, the single
path's style."""

from __future__ import annotations

from qrdistill.config import RunConfig
from qrdistill.pipeline import Pipeline
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import validate_config

STUDENTS = [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]


def run_config(**sections) -> RunConfig:
    return validate_config(RunConfig, {"train": {"students": STUDENTS}, **sections}, "test")


def test_answer_budget_is_left_to_each_students_tokens():
    """No run-level default in the teacher's tokens: evaluation derives each student's budget in
    its own tokens (tests/evaluation/test_evaluate.py); a set value is taken as it is."""
    assert run_config(generate={"backend": {"max_tokens": 300}}).evaluate.max_new_tokens is None
    explicit = run_config(
        generate={"backend": {"max_tokens": 128}}, evaluate={"max_new_tokens": 96}
    )
    assert explicit.evaluate.max_new_tokens == 96


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
