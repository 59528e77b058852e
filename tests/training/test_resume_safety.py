"""Resume is safe: a checkpoint made from another config or other data is never resumed silently,
and a torn last row in metrics.jsonl or routing.jsonl (a crash mid-append) is repaired on resume."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from qrdistill.training import checkpoint, train
from qrdistill.training.recipe import Recipe
from qrdistill.utils.io import read_json, read_jsonl, write_jsonl


def _weights(out) -> dict[str, torch.Tensor]:
    return {
        f"{name}/{k}": v
        for name in ("llama", "qwen")
        for k, v in load_file(out / "students" / name / "adapter_model.safetensors").items()
    }


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def crash_after_step(monkeypatch):
    """`crash_after_step(n)`: training stops (as if killed) on optimizer step n + 1, after the
    checkpoint at step n; it returns what lifts the crash again."""
    original = Recipe.optimizer_step

    def install(step: int):
        def crash(self, *args, **kwargs):
            if self.progress.step == step:
                raise KeyboardInterrupt("simulated crash")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Recipe, "optimizer_step", crash)
        return lambda: monkeypatch.setattr(Recipe, "optimizer_step", original)

    return install


@pytest.fixture
def crash_after_step_2(crash_after_step):
    return crash_after_step(2)


def test_changed_config_is_retrained_from_scratch_not_resumed(
    tmp_path, paths_file, make_config, crash_after_step_2, caplog
):
    old = make_config(epochs=1, checkpoint_every=2, max_steps=3)
    with pytest.raises(KeyboardInterrupt):
        train(old, paths_file, tmp_path / "run")
    assert read_json(tmp_path / "run" / "checkpoints" / "latest.json")["step"] == 2
    crash_after_step_2()

    new = make_config(epochs=1, checkpoint_every=2, max_steps=3)
    new.students[0].lr = 5e-3
    with caplog.at_level(logging.WARNING, logger="qrdistill.training.checkpoint"):
        out = train(new, paths_file, tmp_path / "run", resume=True)
    warnings = [r.getMessage() for r in caplog.records if "not resuming" in r.getMessage()]
    assert len(warnings) == 1 and "students.0.lr" in warnings[0] and "from scratch" in warnings[0]
    fresh = train(new, paths_file, tmp_path / "fresh")
    assert _same(_weights(out), _weights(fresh))  # exactly what a fresh run on the new config gives
    assert read_jsonl(out / "metrics.jsonl") == read_jsonl(fresh / "metrics.jsonl")
    summary = read_json(out / "summary.json")
    assert summary["config"]["students"][0]["lr"] == 5e-3
    assert summary["fingerprint"]["sha256"] == checkpoint.fingerprint(new, paths_file)["sha256"]


def test_changed_data_is_retrained_and_cosmetic_keys_still_resume(
    tmp_path, paths_file, make_config, crash_after_step_2, caplog
):
    cfg = make_config(epochs=1, checkpoint_every=2, max_steps=3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, paths_file, tmp_path / "run")
    crash_after_step_2()
    # Only cosmetic keys differ: the checkpoint is resumed (the run is exactly the uninterrupted one).
    cosmetic = make_config(epochs=1, checkpoint_every=1, max_steps=3, checkpoint_keep=5)
    fp_old, fp_new = (
        checkpoint.fingerprint(cfg, paths_file),
        checkpoint.fingerprint(cosmetic, paths_file),
    )
    assert fp_old["sha256"] == fp_new["sha256"]
    assert checkpoint.resumable(tmp_path / "run" / "checkpoints", fp_new) is not None

    rows = [json.loads(line) for line in paths_file.read_text().splitlines()]
    rows[0]["text"] += " (edited)"
    edited = tmp_path / "edited.jsonl"
    write_jsonl(edited, rows)
    with caplog.at_level(logging.WARNING, logger="qrdistill.training.checkpoint"):
        assert (
            checkpoint.resumable(
                tmp_path / "run" / "checkpoints", checkpoint.fingerprint(cfg, edited)
            )
            is None
        )
    assert "the training data (paths file)" in caplog.text


# 12 paths in batches of 4: 3 steps an epoch; the routing row of epoch 0 is there from step 3.
@pytest.mark.parametrize(
    "name, crash_step, torn, kept",
    [
        ("metrics.jsonl", 2, '{"step": 3, "epoch": 0.75, "objec', ("step", [1, 2])),
        ("routing.jsonl", 4, '{"epoch": 1, "style": "progr', ("epoch", [0] * 6)),
    ],
    ids=["metrics", "routing"],
)
def test_torn_last_row_is_repaired_on_resume(
    name, crash_step, torn, kept, tmp_path, paths_file, make_config, crash_after_step, caplog
):
    cfg = make_config(epochs=2, checkpoint_every=2, max_steps=5)
    lift = crash_after_step(crash_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, paths_file, tmp_path / "run")
    lift()
    full = train(cfg, paths_file, tmp_path / "full")
    log = tmp_path / "run" / name
    key, values = kept
    assert [r[key] for r in read_jsonl(log)] == values  # the rows before the kill
    with log.open("a") as handle:  # what a kill in the middle of appending the next row leaves
        handle.write(torn)
    with caplog.at_level(logging.WARNING, logger="qrdistill.utils.io"):
        out = train(cfg, paths_file, tmp_path / "run", resume=True)
    assert f"{name}:{len(values) + 1}: repaired a torn last line" in caplog.text
    assert read_jsonl(out / name) == read_jsonl(full / name)
    assert read_jsonl(out / "routing.jsonl") and read_jsonl(out / "metrics.jsonl")
    assert _same(_weights(out), _weights(full))


def test_killed_while_exporting_after_the_last_checkpoint_resumes_to_the_same_summary(
    tmp_path, paths_file, make_config, monkeypatch
):
    from qrdistill.training import recipe

    cfg = make_config(epochs=1, checkpoint_every=2, max_steps=3)
    full = train(cfg, paths_file, tmp_path / "full")
    original = recipe.save_student

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash while exporting")

    monkeypatch.setattr(recipe, "save_student", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, paths_file, tmp_path / "run")
    assert read_json(tmp_path / "run" / "checkpoints" / "latest.json")["step"] == 3  # the final one
    monkeypatch.setattr(recipe, "save_student", original)
    out = train(cfg, paths_file, tmp_path / "run", resume=True)
    want, got = read_json(full / "summary.json"), read_json(out / "summary.json")
    assert got["routing_last_epoch"] == want["routing_last_epoch"] != []
    # Everything but where the weights are and the epochs' wall-clock seconds (two runs' times).
    timeless = ("students", "epoch_seconds")
    assert {k: v for k, v in got.items() if k not in timeless} == {
        k: v for k, v in want.items() if k not in timeless
    }
    assert len(got["epoch_seconds"]) == got["epochs_completed"]
    assert _same(_weights(out), _weights(full))
