"""Two CPU processes under `accelerate launch` (DDP on gloo): gates and parameters stay in sync;
SIGINT to one worker stops both after the same step, and the resume is bit-exact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qrdistill.utils.io import read_json, read_jsonl

WORKER = Path(__file__).with_name("ddp_worker.py")


def launch(cfg, paths_file, out: Path, mode: str = "run") -> subprocess.CompletedProcess:
    """`ddp_worker.py` in 2 CPU processes on gloo, in MODE (see the worker)."""
    config = out.parent / f"{out.name}.cfg.json"
    config.write_text(cfg.model_dump_json())
    launcher = Path(sys.executable).with_name("accelerate")
    # accelerate's `--cpu` flag alone runs one process (multi-CPU goes through mpirun); torchrun
    # through `--multi_gpu` with ACCELERATE_USE_CPU gives 2 CPU processes on gloo.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    return subprocess.run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "29517",
            str(WORKER),
            str(config),
            str(paths_file),
            str(out),
            mode,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )


def test_two_process_run_keeps_ranks_in_sync(tmp_path, paths_file, make_config, tiny_students):
    cfg = make_config(epochs=2, batch_size=2)
    out = tmp_path / "ddp"
    result = launch(cfg, paths_file, out)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    # Each rank trained on its own shard of every global batch (12 paths x 2 epochs in total).
    assert not set(ranks[0]["seen"][:6]) & set(ranks[1]["seen"][:6])
    assert sorted(ranks[0]["seen"][:6] + ranks[1]["seen"][:6]) == list(range(12))
    # Parameters (LoRA adapters, router, peer) are identical on both ranks ...
    a, b = ranks[0]["state"], ranks[1]["state"]
    assert a.keys() == b.keys() and any(k.startswith("router.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... so are the router's evidence and the routing statistics gathered from both shards.
    # The router's fit adds both shards' evidence on every rank.
    assert a["router.residual"][1] > 0
    assert torch.equal(ranks[0]["evidence"], ranks[1]["evidence"])
    assert ranks[0]["routing"] == ranks[1]["routing"]
    assert sum(r["total"] for r in ranks[0]["routing"] if r["student"] == "llama") == 12
    # And training happened: the LoRA B matrices moved away from their zero initialisation.
    assert any("lora_B" in k and a[k].abs().sum() > 0 for k in a)
    assert (out / "summary.json").exists()


@pytest.mark.slow  # three 2-process launches: about 3 min on a shared 2-core machine
def test_sigint_to_one_worker_stops_both_after_one_step_and_the_resume_is_bit_exact(
    tmp_path, paths_file, make_config
):
    """SIGINT to one worker alone (`kill -INT PID`): both ranks stop after the same step with one
    checkpoint there, and the resumed run ends with the uninterrupted run's weights, router
    decisions and logs, bit for bit."""
    # One path per rank and step: 12 optimizer steps over 2 epochs, a checkpoint every 2.
    cfg = make_config(epochs=2, batch_size=1)
    full, run = tmp_path / "full", tmp_path / "run"
    assert (done := launch(cfg, paths_file, full)).returncode == 0, done.stderr[-4000:]

    stopped = launch(cfg, paths_file, run, "sigint-rank1-at-step-7")
    assert stopped.returncode != 0
    # The warning comes from each rank: both stopped after step 7, none ran step 8.
    assert stopped.stderr.count("stopped after optimizer step 7 of 12") == 2, stopped.stderr[-4000:]
    assert "optimizer step 8 " not in stopped.stderr
    assert read_json(run / "checkpoints" / "latest.json")["step"] == 7
    assert not (run / "summary.json").exists()

    resumed = launch(cfg, paths_file, run, "resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    for rank in range(2):
        want = torch.load(full / f"rank{rank}.pt", weights_only=False)
        got = torch.load(run / f"rank{rank}.pt", weights_only=False)
        assert len(want["seen"]) == 12 and len(got["seen"]) == 5  # steps 8-12 only: resumed
        assert got["seen"] == want["seen"][7:]
        assert want["state"].keys() == got["state"].keys()
        assert all(torch.equal(want["state"][k], got["state"][k]) for k in want["state"])
        assert torch.equal(want["evidence"], got["evidence"])
        assert want["routing"] == got["routing"]
    for student in ("llama", "qwen"):
        weights = [
            load_file(out / "students" / student / "adapter_model.safetensors")
            for out in (full, run)
        ]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert read_jsonl(run / "metrics.jsonl") == read_jsonl(full / "metrics.jsonl")
    assert read_jsonl(run / "routing.jsonl") == read_jsonl(full / "routing.jsonl")
