"""Peak memory per training step of a joint QR-Distill run, in four settings: with and without
peer teaching (the chunked loss, the default), with the full logits (`loss_chunk_tokens: null`,
the loss before the chunked one), and with gradient checkpointing on both students.

    .venv/bin/python benchmarks/peak_memory.py           # 2 runs per setting, 2 optimizer steps each
    .venv/bin/python benchmarks/peak_memory.py --small   # 1 run per setting, 1 step

CPU measure: the process's peak resident set size (Linux VmHWM from /proc/self/status). Each
measurement is a fresh subprocess (sides alternate), so one side's allocations never count for
the other. After the trainer is built (students loaded, data encoded, embeddings computed) the
peak is reset (`echo 5 > /proc/self/clear_refs`), then optimizer steps run; reported are the
RSS after set-up, the peak during the steps, and their difference (the training steps' own
memory: activations, gradients, optimizer state). tracemalloc is not used: it does not see
torch's CPU tensor allocations. On a GPU the same script would read torch.cuda.max_memory_allocated.
Students: the real packaged SmolLM2-135M-Instruct + Gemma-3-270M (float32, LoRA r=8 on q/v),
batch 4 realistic paths (~150 tokens, benchmarks/_common.py), learned routing in both cases.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    REAL_STUDENTS,
    busy_processes,
    emit,
    figure,
    median,
    realistic_paths,
    timing_settings,
    write_paths,
    write_results,
)


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


# Each setting: the TrainConfig fields it changes from the default joint run.
SETTINGS = {
    "peer": {},
    "no_peer": {"peer": {"enabled": False}},
    "peer_full_logits": {"loss_chunk_tokens": None},
    "peer_checkpointing": {
        "students": [{**s, "gradient_checkpointing": True} for s in REAL_STUDENTS]
    },
}


def child(setting: str, steps: int, batch_size: int, tmp: Path) -> dict:
    from _common import make_recipe

    from qrdistill.training.config import TrainConfig

    paths_file = write_paths(realistic_paths(batch_size * steps), tmp / "paths.jsonl")
    cfg = TrainConfig(
        **{
            "students": REAL_STUDENTS,
            "objective": "qr_distill",
            "routing": {"mode": "learned", "cache_dir": str(tmp / "emb")},
            **timing_settings(1, batch_size),
            **SETTINGS[setting],
        }
    )
    recipe = make_recipe(cfg, paths_file, tmp / setting)
    after_setup = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    reset_ok = abs(status_mb("VmHWM") - status_mb("VmRSS")) < 64
    batches, windows = recipe.epoch_plan(0)
    for window in windows[:steps]:
        recipe.optimizer_step(0, [(b, batches[b]) for b in window], len(batches))
    peak = status_mb("VmHWM")
    return {
        "setting": setting,
        "steps": min(steps, len(windows)),
        "rss_after_setup_mb": round(after_setup),
        "peak_rss_during_steps_mb": round(peak),
        "step_memory_mb": round(peak - after_setup),
        "peak_reset_ok": reset_ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--child", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    reps = args.reps or (1 if args.small else 2)
    steps = args.steps or (1 if args.small else 2)
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(child(args.child, steps, args.batch_size, Path(tmp))))
        return

    # Memory does not depend on CPU contention: no waiting for a quiet CPU, but what ran beside is recorded.
    quiet = {"busy_at_start": busy_processes()}
    runs: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
    for rep in range(reps):
        for side in list(SETTINGS) if rep % 2 == 0 else list(reversed(SETTINGS)):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    side,
                    "--steps",
                    str(steps),
                    "--batch-size",
                    str(args.batch_size),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            runs[side].append(emit({"rep": rep, **row}))
    result = {}
    for side, rows in runs.items():
        result[side] = {
            k: median([r[k] for r in rows])
            for k in ("rss_after_setup_mb", "peak_rss_during_steps_mb", "step_memory_mb")
        }

    def ratio(a: str, b: str, key: str = "peak_rss_during_steps_mb") -> float:
        return round(result[a][key] / max(1, result[b][key]), 3)

    emit({"measurement": "median", **result})
    figures = {
        **{
            f"peak_rss_mb/{side}": figure(
                result[side]["peak_rss_during_steps_mb"],
                "MB, peak RSS during the steps",
                "<= 3500" if side == "peer" else None,
            )
            for side in runs
        },
        "peak_rss_ratio_chunked_over_full_logits": figure(
            ratio("peer", "peer_full_logits"),
            "peak RSS, chunked loss / full logits (peer teaching on)",
            "none: context",
        ),
        "peak_rss_ratio_peer_over_no_peer": figure(
            ratio("peer", "no_peer"),
            "peak RSS with peer teaching / without",
            "none: context (peer teaching pools last hidden states only)",
        ),
    }
    write_results(
        "peak_memory",
        {
            "figures": figures,
            "measure": "peak RSS (VmHWM, reset after set-up via /proc/self/clear_refs), one subprocess per run",
            "models": "real packaged SmolLM2-135M-Instruct + Gemma-3-270M, float32, LoRA r=8 alpha=16 on q_proj/v_proj",
            "config": {
                "batch_size": args.batch_size,
                "steps": steps,
                "reps": reps,
                "routing": "learned",
                "peer": {"kind": "hidden", "dim": 128},
                "settings": SETTINGS,
            },
            "quiet_cpu": quiet,
            "runs": runs,
            "result": result,
        },
    )


if __name__ == "__main__":
    main()
