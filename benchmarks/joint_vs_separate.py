"""Time per epoch to train two students jointly with QR-Distill (learned routing + peer teaching)
against the sum of the times to train each alone (single-student SFT on the same paths, same
batch settings), all through qrdistill's own training loop.

    .venv/bin/python benchmarks/joint_vs_separate.py           # 32 paths, 3 timed epochs per side
    .venv/bin/python benchmarks/joint_vs_separate.py --small   # 8 paths, 2 timed epochs per side

Students: the real packaged SmolLM2-135M-Instruct and Gemma-3-270M (float32, LoRA r=8 on q/v).
Paths: realistic ReasoningPath records built from real GSM8K/StrategyQA questions and their real
worked solutions (benchmarks/_common.py), about 150 tokens each, all correct, so single-student
SFT (method answer_aug: all correct paths) trains on exactly the paths the joint run gets.
The three trainers are built once, in one process; then epochs are timed in turn (joint, A, B,
rotating the order every round), after one untimed warm-up round. With `--router-epochs W` the
joint run first trains W epochs (timed and logged with their routing rates, not part of the
median) so the timed rounds show routing after the router has learned; the whole-run ratio
(every joint epoch against the separate medians) is reported beside it. The router's text encoder
embeds the paths once per run (cached); that one-off cost is reported apart, not per epoch.
Key: `ratio_joint_over_separate` = median joint epoch / (median A epoch + median B epoch).
Paper: 0.69 (11:34 vs 16:42 per epoch, GPU). Target: 0.60 or lower.
Beside it, the joint run's mean routing rate in the timed epochs: a student computes only its
routed paths, so the ratio cannot go much below that rate (plus the router and peer modules).
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--router-epochs",
        type=int,
        default=0,
        help="joint epochs trained before the timed rounds, so the router has learned (default 0)",
    )
    parser.add_argument(
        "--students-per-path",
        type=int,
        default=None,
        help="the compute budget (routing.students_per_path, e.g. 1 of 2); default: the paper's "
        "free subsets",
    )
    parser.add_argument(
        "--exploration-share",
        type=float,
        default=None,
        help="routing.exploration_share, the paths every student computes (default: the "
        "config's); a run with it set writes joint_vs_separate_explore<share>.json",
    )
    args = parse_epoch_args(parser, small_paths=8, small_reps=2)
    n_paths, reps = args.paths, args.reps

    from qrdistill.training.config import TrainConfig
    from qrdistill.training.router import embed_texts

    tmp = Path(tempfile.mkdtemp(prefix="bench-joint-"))
    paths_file = write_paths(realistic_paths(n_paths), tmp / "paths.jsonl")
    common = timing_settings(args.router_epochs + reps + 2, args.batch_size)
    configs = {
        "joint": TrainConfig(
            students=REAL_STUDENTS,
            objective="qr_distill",
            routing={
                "mode": "learned",
                "cache_dir": str(tmp / "emb"),
                "students_per_path": args.students_per_path,
                **(
                    {}
                    if args.exploration_share is None
                    else {"exploration_share": args.exploration_share}
                ),
            },
            peer={"enabled": True},
            **common,
        ),
        **{
            s["name"]: TrainConfig(
                students=[s],
                objective="answer_aug",
                routing={"mode": "all"},
                peer={"enabled": False},
                **common,
            )
            for s in REAL_STUDENTS
        },
    }
    load_s, recipes = {}, {}
    for name, cfg in configs.items():
        start = time.perf_counter()
        recipes[name] = make_recipe(cfg, paths_file, tmp / name)
        load_s[name] = round(time.perf_counter() - start, 2)
    # the encoder's one-off cost, measured on a fresh cache
    start = time.perf_counter()
    embed_texts([i.route_text for i in recipes["joint"].data.items], "minilm", tmp / "emb-fresh")
    embed_s = time.perf_counter() - start

    quiet = wait_for_quiet_cpu()
    # The router learns who each path suits while the students train; these epochs show how the
    # routing rate (and with it the joint epoch time) falls before the timed rounds.
    router_epochs = []
    for epoch in range(args.router_epochs):
        got = time_recipe_epoch(recipes["joint"], epoch)
        rate = sum(got["route_rate"].values()) / len(REAL_STUDENTS)
        router_epochs.append(
            emit(
                {
                    "router_epoch": epoch,
                    "epoch_s/joint": round(got["seconds"], 2),
                    "mean_route_rate": round(rate, 3),
                    "joint_route_rate": {n: round(v, 3) for n, v in got["route_rate"].items()},
                }
            )
        )
    sides = list(configs)
    times: dict[str, list[float]] = {s: [] for s in sides}
    rates: list[float] = []
    rounds = []
    for rnd in range(reps + 1):  # round 0 is a warm-up
        order = sides[rnd % 3 :] + sides[: rnd % 3]
        tokens_before = list(recipes["joint"].progress.tokens)
        got = {s: time_recipe_epoch(recipes[s], args.router_epochs + rnd) for s in order}
        trained = [a - b for a, b in zip(recipes["joint"].progress.tokens, tokens_before)]
        if rnd == 0:
            continue
        for s in sides:
            times[s].append(got[s]["seconds"])
        rate = sum(got["joint"]["route_rate"].values()) / len(REAL_STUDENTS)
        rates.append(rate)
        row = {
            "round": rnd,
            "order": order,
            **{f"epoch_s/{s}": round(got[s]["seconds"], 2) for s in sides},
            "ratio_joint_over_separate": round(
                got["joint"]["seconds"] / sum(got[s]["seconds"] for s in sides[1:]), 3
            ),
            "joint_route_rate": {n: round(v, 3) for n, v in got["joint"]["route_rate"].items()},
            "joint_trained_tokens": dict(zip(recipes["joint"].names, trained)),
            "all_tokens": got["joint"]["tokens"],
        }
        rounds.append(emit(row))
    med = {s: median(v) for s in sides for v in [times[s]]}
    ratio = med["joint"] / sum(med[s] for s in sides[1:])
    per_round = [r["ratio_joint_over_separate"] for r in rounds]
    result = emit(
        {
            "measurement": "median",
            "paths": n_paths,
            "timed_epochs_per_side": reps,
            "router_epochs_before_timing": args.router_epochs,
            "students_per_path": args.students_per_path,
            "exploration_share": configs["joint"].routing.exploration_share,
            **{f"epoch_s/{s}": round(med[s], 2) for s in sides},
            "ratio_joint_over_separate": round(ratio, 3),
            "ratio_rounds_min_max": [min(per_round), max(per_round)],
            "mean_route_rate": round(sum(rates) / len(rates), 3),
            "paper": 0.69,
            "router_encoder_embed_s_once_per_run": round(embed_s, 2),
        }
    )
    whole_run = statistics.mean([r["epoch_s/joint"] for r in router_epochs] + times["joint"])
    figures = {
        "joint_over_separate_epoch_time": figure(ratio, "ratio", "<= 0.60", rounds=per_round),
        # What the router's learning epochs cost too: every joint epoch of the run, timed ones
        # included, against the separate sides' median epochs.
        "joint_over_separate_whole_run": figure(
            whole_run / sum(med[s] for s in sides[1:]),
            "ratio",
            "none: includes the epochs before the router has learned",
        ),
        "mean_routing_rate": figure(
            sum(rates) / len(rates),
            "share of (path, student) pairs",
            "none: the floor the ratio can reach",
        ),
    }
    steps = recipes["joint"].windows_per_epoch
    name = "joint_vs_separate_small" if args.small else "joint_vs_separate"
    if args.exploration_share is not None:
        name += f"_explore{args.exploration_share:g}"
    write_results(
        name,
        {
            "figures": figures,
            "models": "real packaged SmolLM2-135M-Instruct + Gemma-3-270M, float32, LoRA r=8 alpha=16 on q_proj/v_proj",
            "data": f"{n_paths} realistic paths (real GSM8K/StrategyQA questions + real solutions, templated)",
            "config": {name: cfg.model_dump(mode="json") for name, cfg in configs.items()},
            "optimizer_steps_per_epoch": steps,
            "load_s": load_s,
            "quiet_cpu": quiet,
            "router_epochs": router_epochs,
            "rounds": rounds,
            "result": result,
        },
    )


if __name__ == "__main__":
    main()
