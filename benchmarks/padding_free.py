"""Training tokens/s and real-token share with padding-free batches (`padding_free: true`: each
student's routed paths concatenated into one row) against today's default (length-grouped
batches, each student's routed rows right-padded to their longest), through qrdistill's own loop.

    .venv/bin/python benchmarks/padding_free.py            # 32 paths, 3 timed epochs per side
    .venv/bin/python benchmarks/padding_free.py --small    # 8 paths, 1 timed epoch per side

Students: the real packaged SmolLM2-135M-Instruct and Gemma-3-270M (float32 on CPU, LoRA r=8 on
q/v), QR-Distill with learned routing and peer teaching, batch 4, on realistic paths (real
GSM8K/StrategyQA questions and solutions, benchmarks/_common.py). Both trainers are built once
in one process with the same seed; epochs are timed in turn, the order swapped every round,
after one untimed warm-up round. Real tokens are the recipe's own counts (trained plus
forward-only); processed positions are counted at each student's forward (the size of the
`input_ids` it is given), so the real-token share is measured, not computed from lengths.
Key: `tokens_per_s_ratio` = padding-free tokens/s / padded tokens/s (median of the rounds, with
their min and max); `real_token_share/padding_free`, target 1.0.
On CPU (sdpa) a padding-free row attends under a block-diagonal mask over the whole row, so
attention work grows with the square of the row; flash_attention_2 (GPU) skips it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    REAL_STUDENTS,
    emit,
    figure,
    make_recipe,
    median,
    parse_epoch_args,
    realistic_paths,
    time_recipe_epoch,
    timing_settings,
    wait_for_quiet_cpu,
    write_paths,
    write_results,
)

SIDES = ("padded", "padding_free")


def count_positions(recipe) -> list[int]:
    """Positions each student is given, summed over its forwards (a list updated in place)."""
    counts = [0] * len(recipe.names)
    for s, student in enumerate(recipe.acc.unwrap_model(recipe.model).students):

        def hook(module, args, kwargs, s=s):
            counts[s] += kwargs["input_ids"].numel()

        student.register_forward_pre_hook(hook, with_kwargs=True)
    return counts


def real_tokens(recipe) -> int:
    progress = recipe.progress
    return sum(progress.tokens) + sum(progress.forward_only_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--attn-implementation",
        default="auto",
        choices=["auto", "sdpa", "eager", "flash_attention_2"],
    )
    args = parse_epoch_args(parser, small_paths=8, small_reps=1)
    n_paths, reps = args.paths, args.reps

    from qrdistill.training.config import TrainConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-padding-free-"))
    paths_file = write_paths(realistic_paths(n_paths), tmp / "paths.jsonl")
    configs = {
        side: TrainConfig(
            students=[
                {**s, "attn_implementation": args.attn_implementation} for s in REAL_STUDENTS
            ],
            objective="qr_distill",
            routing={"mode": "learned", "cache_dir": str(tmp / "emb")},
            padding_free=side == "padding_free",
            **timing_settings(reps + 2, args.batch_size),
        )
        for side in SIDES
    }
    recipes = {side: make_recipe(cfg, paths_file, tmp / side) for side, cfg in configs.items()}
    positions = {side: count_positions(recipes[side]) for side in SIDES}

    quiet = wait_for_quiet_cpu()
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    real = dict.fromkeys(SIDES, 0)
    seen = dict.fromkeys(SIDES, 0)
    rounds = []
    for rnd in range(reps + 1):  # round 0 is a warm-up
        order = list(SIDES) if rnd % 2 == 0 else list(reversed(SIDES))
        got = {}
        for side in order:
            recipe = recipes[side]
            tokens_before, positions_before = real_tokens(recipe), sum(positions[side])
            start = time.perf_counter()
            time_recipe_epoch(recipe, rnd)
            got[side] = {
                "seconds": time.perf_counter() - start,
                "real": real_tokens(recipe) - tokens_before,
                "positions": sum(positions[side]) - positions_before,
            }
        if rnd == 0:
            continue
        for side in SIDES:
            seconds[side].append(got[side]["seconds"])
            real[side] += got[side]["real"]
            seen[side] += got[side]["positions"]
        tps = {side: got[side]["real"] / got[side]["seconds"] for side in SIDES}
        rounds.append(
            emit(
                {
                    "round": rnd,
                    "order": order,
                    **{f"epoch_s/{side}": round(got[side]["seconds"], 2) for side in SIDES},
                    **{f"real_tokens/{side}": got[side]["real"] for side in SIDES},
                    **{f"positions/{side}": got[side]["positions"] for side in SIDES},
                    **{f"tokens_per_s/{side}": round(tps[side], 1) for side in SIDES},
                    "tokens_per_s_ratio": round(tps["padding_free"] / tps["padded"], 3),
                }
            )
        )
    ratios = [r["tokens_per_s_ratio"] for r in rounds]
    tps_rounds = {side: [r[f"tokens_per_s/{side}"] for r in rounds] for side in SIDES}
    share = {side: real[side] / seen[side] for side in SIDES}
    ratio = median(ratios)
    result = emit(
        {
            "measurement": "median",
            "paths": n_paths,
            "timed_epochs_per_side": reps,
            **{f"tokens_per_s/{side}": round(median(tps_rounds[side]), 1) for side in SIDES},
            "tokens_per_s_ratio": round(ratio, 3),
            "ratio_rounds_min_max": [min(ratios), max(ratios)],
            **{f"real_token_share/{side}": round(share[side], 4) for side in SIDES},
        }
    )

    positions = "real tokens / positions given to the students"
    figures = {
        "tokens_per_s_ratio": figure(
            ratio, "padding-free tokens/s / padded tokens/s", ">= 1.0", rounds=ratios
        ),
        **{
            f"tokens_per_s/{side}": figure(
                median(tps_rounds[side]),
                "real tokens/s (trained + forward-only, both students)",
                "none: context",
                rounds=tps_rounds[side],
            )
            for side in SIDES
        },
        "real_token_share/padded": figure(
            share["padded"], positions, "none: today's default, for comparison"
        ),
        "real_token_share/padding_free": figure(share["padding_free"], positions, ">= 1.0"),
    }
    write_results(
        "padding_free_small" if args.small else "padding_free",
        {
            "figures": figures,
            "models": "real packaged SmolLM2-135M-Instruct + Gemma-3-270M, LoRA r=8 alpha=16 on q_proj/v_proj",
            "data": f"{n_paths} realistic paths (real GSM8K/StrategyQA questions + real solutions, templated)",
            "config": {side: cfg.model_dump(mode="json") for side, cfg in configs.items()},
            "attn_implementation": {
                side: [
                    s.config._attn_implementation
                    for s in recipes[side].acc.unwrap_model(recipes[side].model).students
                ]
                for side in SIDES
            },
            "quiet_cpu": quiet,
            "rounds": rounds,
            "result": result,
        },
    )


if __name__ == "__main__":
    main()
