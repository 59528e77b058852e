"""Peak memory of a joint QR-Distill training step, and what each memory setting costs in
tokens/s: the chunked loss at 256 tokens a chunk (the default) and at 64, without peer
teaching, with the full logits (`loss_chunk_tokens: null`), with gradient checkpointing on
both students, and with every exact saving at once (checkpointing, padding-free batches,
64-token chunks).

    .venv/bin/python benchmarks/peak_memory.py                # memory: 1 run per setting; timing: 3 rounds
    .venv/bin/python benchmarks/peak_memory.py --small        # 1 step, 1 timed round
    .venv/bin/python benchmarks/peak_memory.py --skip-timing  # memory only

Memory (CPU): the process's peak resident set size (Linux VmHWM from /proc/self/status). Each
measurement is a fresh subprocess (sides alternate), so one side's allocations never count for
the other. After the trainer is built (students loaded, data encoded, embeddings computed) the
peak is reset (`echo 5 > /proc/self/clear_refs`), then optimizer steps run; reported are the
RSS after set-up, the peak during the steps, and their difference (the steps' own memory:
activations, gradients, optimizer state, and the weights' pages first touched by a step).
tracemalloc is not used: it does not see torch's CPU tensor allocations. The shape of every
step's micro-batch (its paths' lengths in tokens) is kept beside it: activations grow with the
positions a step processes, so a peak is a statement about that shape.

Timing: one process, one Recipe per timed setting, the settings' epochs taken in alternating
order each round (after an untimed warm-up epoch each), on the same paths and batch order; the
figure is real tokens/s of a setting over the default's, median and spread over the rounds.
The CPU is waited on until quiet before timing.

Students: the real packaged SmolLM2-135M-Instruct + Gemma-3-270M (float32, LoRA r=8 on q/v),
batch 4 realistic GSM8K/MATH paths (benchmarks/_common.py; 8 paths of 145-470 tokens), learned
routing.
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
    make_recipe,
    median,
    realistic_paths,
    time_recipe_epoch,
    timing_settings,
    wait_for_quiet_cpu,
    write_paths,
    write_results,
)


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


# Each setting: the TrainConfig fields it changes from the default joint run.
CHECKPOINTING = {"students": [{**s, "gradient_checkpointing": True} for s in REAL_STUDENTS]}
SETTINGS = {
    "peer": {},
    "peer_chunk64": {"loss_chunk_tokens": 64},
    "no_peer": {"peer": {"enabled": False}},
    "peer_full_logits": {"loss_chunk_tokens": None},
    "peer_checkpointing": CHECKPOINTING,
    # Every exact memory saving at once: what fits a step in MEMORY_TARGET_MB here.
    "peer_low_memory": {**CHECKPOINTING, "padding_free": True, "loss_chunk_tokens": 64},
}
# The settings whose tokens/s is compared with the default's ("peer"), in one process.
TIMED = ["peer", "peer_chunk64", "peer_checkpointing", "peer_low_memory"]
MEMORY_TARGET_MB = 3500  # issue 21: one training step of both packaged students


def train_config(setting: str, tmp: Path, batch_size: int):
    from qrdistill.training.config import TrainConfig

    return TrainConfig(
        **{
            "students": REAL_STUDENTS,
            "objective": "qr_distill",
            "routing": {"mode": "learned", "cache_dir": str(tmp / "emb")},
            **timing_settings(1, batch_size),
            **SETTINGS[setting],
        }
    )


def window_shapes(recipe, batches, window) -> list[list[int]]:
    """Each micro-batch of an optimizer step as its paths' lengths in tokens (first student)."""
    encoded = recipe.data.encoded[recipe.names[0]]
    return [[len(encoded[i].input_ids) for i in batches[b]] for b in window]


def child(setting: str, steps: int, batch_size: int, tmp: Path) -> dict:
    paths_file = write_paths(realistic_paths(batch_size * steps), tmp / "paths.jsonl")
    recipe = make_recipe(train_config(setting, tmp, batch_size), paths_file, tmp / setting)
    after_setup = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    reset_ok = abs(status_mb("VmHWM") - status_mb("VmRSS")) < 64
    batches, windows = recipe.epoch_plan(0)
    peaks = []
    for window in windows[:steps]:
        recipe.optimizer_step(0, [(b, batches[b]) for b in window], len(batches))
        peaks.append(round(status_mb("VmHWM")))
    peak = status_mb("VmHWM")
    return {
        "setting": setting,
        "steps": min(steps, len(windows)),
        # The peak so far after each step, and each step's micro-batches as path lengths.
        "peak_after_each_step_mb": peaks,
        "step_shapes": [window_shapes(recipe, batches, w) for w in windows[:steps]],
        "rss_after_setup_mb": round(after_setup),
        "peak_rss_during_steps_mb": round(peak),
        "step_memory_mb": round(peak - after_setup),
        "peak_reset_ok": reset_ok,
    }


def timing(rounds: int, steps: int, batch_size: int, tmp: Path) -> dict:
    """Real tokens/s of each TIMED setting, one Recipe each in this process; every round takes
    one epoch of each (the same batch order), in alternating order, after an untimed warm-up
    epoch each. Returns per setting its tokens/s per round."""
    paths_file = write_paths(realistic_paths(batch_size * steps), tmp / "paths.jsonl")
    recipes = {
        name: make_recipe(train_config(name, tmp, batch_size), paths_file, tmp / name)
        for name in TIMED
    }
    for recipe in recipes.values():
        time_recipe_epoch(recipe, 0)
    rates: dict[str, list[float]] = {name: [] for name in TIMED}
    for r in range(rounds):
        for name in TIMED if r % 2 == 0 else list(reversed(TIMED)):
            run = time_recipe_epoch(recipes[name], 1 + r)
            rates[name].append(sum(run["tokens"].values()) / run["seconds"])
            emit({"round": r, "setting": name, "seconds": round(run["seconds"], 2)})
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3)")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--child", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    reps = args.reps or 1
    rounds = args.rounds or (1 if args.small else 3)
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
    rates, quiet_timing = {}, None
    if not args.skip_timing:
        quiet_timing = wait_for_quiet_cpu()
        with tempfile.TemporaryDirectory() as tmp:
            rates = timing(rounds, steps, args.batch_size, Path(tmp))
    figures = {
        **{
            f"peak_rss_mb/{side}": figure(
                result[side]["peak_rss_during_steps_mb"],
                "MB, peak RSS during the steps",
                f"<= {MEMORY_TARGET_MB}",
            )
            for side in runs
        },
        "peak_rss_ratio_chunked_over_full_logits": figure(
            ratio("peer", "peer_full_logits"),
            "peak RSS, chunked loss / full logits (peer teaching on)",
            "none: context",
        ),
        **{
            f"tokens_per_s_ratio/{side}_over_peer": figure(
                median(ratios),
                f"real tokens/s, {side} / the default (peer), same process, alternating",
                "none: the price of its memory",
                rounds=ratios,
            )
            for side in TIMED[1:]
            if rates
            for ratios in [[a / b for a, b in zip(rates[side], rates["peer"])]]
        },
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
                "timed_rounds": 0 if args.skip_timing else rounds,
                "timed": TIMED,
                "routing": "learned",
                "peer": {"kind": "hidden", "dim": 128},
                "settings": SETTINGS,
            },
            "quiet_cpu": quiet,
            "quiet_cpu_timing": quiet_timing,
            "runs": runs,
            "result": result,
            "timing_tokens_per_s": rates,
        },
    )


if __name__ == "__main__":
    main()
