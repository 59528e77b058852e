"""Two CPU processes under `accelerate launch` (DDP on gloo): gates and parameters stay in sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_run_keeps_ranks_in_sync(tmp_path, paths_file, make_config, tiny_students):
    cfg = make_config(epochs=2, batch_size=2)
    config = tmp_path / "cfg.json"
    config.write_text(cfg.model_dump_json())
    out = tmp_path / "ddp"
    launcher = Path(sys.executable).with_name("accelerate")
    # accelerate's `--cpu` flag alone runs one process (multi-CPU goes through mpirun); torchrun
    # through `--multi_gpu` with ACCELERATE_USE_CPU gives 2 CPU processes on gloo.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    result = subprocess.run(
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
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
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
