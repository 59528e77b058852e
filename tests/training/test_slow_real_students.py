"""The two real packaged students (different tokenizers, vocab 49k vs 262k) train jointly and
their loss falls. Minutes on CPU: slow-marked."""

from __future__ import annotations

import pytest

from qrdistill.training import TrainConfig, train
from qrdistill.utils.io import read_json, read_jsonl


@pytest.mark.slow
def test_real_students_loss_falls(tmp_path, paths_file, embed_cache):
    lora = {"r": 8, "alpha": 16, "dropout": 0.0}
    cfg = TrainConfig.model_validate(
        {
            "students": [
                {"name": "smollm2", "model": "smollm2-135m-instruct", "lr": 1e-3, "lora": lora},
                {"name": "gemma3", "model": "gemma3-270m", "lr": 1e-3, "lora": lora},
            ],
            "routing": {"cache_dir": str(embed_cache)},
            "peer": {"dim": 64},
            "objective": "sft_single",
            "epochs": 6,
            "batch_size": 4,
            "max_length": 96,
            "log_every": 1,
            "checkpoint_every": 100,
            "progress": False,
        }
    )
    out = train(cfg, paths_file, tmp_path / "real")
    rows = read_jsonl(out / "metrics.jsonl")  # sft_single: the same 4 paths every step
    for name in ("smollm2", "gemma3"):
        assert rows[-1][f"loss/{name}"] < 0.8 * rows[0][f"loss/{name}"]
    assert read_json(out / "summary.json")["counts"]["items"] == 4


@pytest.mark.slow
def test_real_students_qr_distill_runs(tmp_path, paths_file, embed_cache):
    cfg = TrainConfig.model_validate(
        {
            "students": [
                {"name": "smollm2", "model": "smollm2-135m-instruct", "lr": 1e-3},
                {"name": "gemma3", "model": "gemma3-270m", "lr": 1e-3},
            ],
            "routing": {"cache_dir": str(embed_cache)},
            "peer": {"dim": 64},
            "epochs": 1,
            "max_steps": 2,
            "batch_size": 2,
            "max_length": 96,
            "log_every": 1,
            "progress": False,
        }
    )
    out = train(cfg, paths_file, tmp_path / "qr")
    summary = read_json(out / "summary.json")
    assert (
        summary["effective"] == {"routing_mode": "learned", "peer": True} and summary["steps"] == 2
    )
    assert len(read_jsonl(out / "routing.jsonl")) == 3 * 2
