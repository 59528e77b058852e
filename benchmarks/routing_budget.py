"""What the compute budget costs the students: QR-Distill at one student per path (k = 1 of 2,
exploration share included) against no routing (both students train on every path), on the same
paths, settings and seeds; then each student's loss on held-out paths.

    .venv/bin/python benchmarks/routing_budget.py            # 32 train + 16 held-out paths, 3 epochs, 3 seeds
    .venv/bin/python benchmarks/routing_budget.py --small    # 12 + 6 paths, 1 epoch, 2 seeds
    (--paths N, --epochs E, --seeds K set each; held-out paths are always half the training paths)

Students: the real packaged SmolLM2-135M-Instruct and Gemma-3-270M (float32, LoRA r=8 on q/v).
Paths: realistic ReasoningPath records (real GSM8K and MATH questions with their worked
solutions, benchmarks/_common.py); the held-out paths are other questions.
Per seed, the two settings run in turn (the order alternates with the seed). After training, each
student's mean loss per token on the held-out paths (every gate open, nothing trained). Figures:
per student, the budget's held-out loss minus no routing's (median over seeds, with every seed's
value), beside the noise: how far apart the seeds put the same setting (its range). A difference
inside that range is not a cost this run can show. Also the tokens each student trained on,
budget over no routing: the compute the budget saves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    REAL_STUDENTS,
    emit,
    figure,
    path_losses,
    realistic_paths,
    write_paths,
    write_results,
)

SETTINGS = {
    "budget_k1": {"mode": "learned", "students_per_path": 1},
    "no_routing": {"mode": "all"},
}


def train_and_probe(setting: str, seed: int, epochs: int, train_file, dev_file, tmp) -> dict:
    from qrdistill.training import train
    from qrdistill.training.config import TrainConfig
    from qrdistill.training.export import merge_student
    from qrdistill.utils.io import read_jsonl

    run = tmp / f"{setting}-{seed}"
    cfg = TrainConfig(
        students=REAL_STUDENTS,
        objective="qr_distill",
        routing={**SETTINGS[setting], "cache_dir": str(tmp / "emb")},
        epochs=epochs,
        batch_size=4,
        max_length=512,
        progress=False,
        checkpoint_every=10_000,
        seed=seed,
    )
    out = train(cfg, train_file, run / "train")
    last = read_jsonl(out / "metrics.jsonl")[-1]
    merged = [
        {**s, "model": str(merge_student(out / "students" / s["name"], run / "merged" / s["name"]))}
        for s in REAL_STUDENTS
    ]
    trained = TrainConfig.model_validate({**cfg.model_dump(exclude_unset=True), "students": merged})
    losses = path_losses(trained, dev_file, run / "probe")
    held_out = {
        s["name"]: statistics.fmean(
            v for (_, name), vs in losses.items() if name == s["name"] for v in vs
        )
        for s in REAL_STUDENTS
    }
    row = {
        "setting": setting,
        "seed": seed,
        "held_out_loss": {k: round(v, 4) for k, v in held_out.items()},
        "trained_tokens": {s["name"]: last[f"tokens/{s['name']}"] for s in REAL_STUDENTS},
        "route_rate_last_window": {
            s["name"]: last[f"route_rate/{s['name']}"] for s in REAL_STUDENTS
        },
    }
    return emit(row)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--paths", type=int, default=None, help="training paths (default 32)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 3)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 3)")
    args = parser.parse_args()
    n_train, epochs, n_seeds = (12, 1, 2) if args.small else (32, 3, 3)
    n_train, epochs = args.paths or n_train, args.epochs or epochs
    n_dev, seeds = n_train // 2, list(range(args.seeds or n_seeds))

    tmp = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    both = realistic_paths(n_train + n_dev)
    train_file = write_paths(both[:n_train], tmp / "train.jsonl")
    dev_file = write_paths(both[n_train:], tmp / "dev.jsonl")

    rounds = []
    for seed in seeds:
        order = list(SETTINGS) if seed % 2 == 0 else list(reversed(SETTINGS))
        for setting in order:
            rounds.append(train_and_probe(setting, seed, epochs, train_file, dev_file, tmp))

    def by(setting: str, key: str, name: str) -> list[float]:
        return [
            r[key][name] for r in sorted(rounds, key=lambda r: r["seed"]) if r["setting"] == setting
        ]

    figures, detail = {}, {}
    for s in REAL_STUDENTS:
        name = s["name"]
        budget, full = (
            by("budget_k1", "held_out_loss", name),
            by("no_routing", "held_out_loss", name),
        )
        cost = [round(b - f, 4) for b, f in zip(budget, full)]
        noise = max(max(budget) - min(budget), max(full) - min(full))
        figures[f"held_out_loss_budget_minus_no_routing/{name}"] = figure(
            round(statistics.median(cost), 4),
            "nats per token on held-out paths (median over seeds)",
            "none (context: compare with the seeds' range)",
        )
        figures[f"held_out_loss_seed_range/{name}"] = figure(
            round(noise, 4),
            "nats per token: largest range over seeds of one setting",
            "none (the noise)",
        )
        tokens = [
            b / f
            for b, f in zip(
                by("budget_k1", "trained_tokens", name), by("no_routing", "trained_tokens", name)
            )
        ]
        figures[f"trained_tokens_budget_over_no_routing/{name}"] = figure(
            round(statistics.median(tokens), 3), "ratio", "none (the compute saved)"
        )
        detail[name] = {"cost_per_seed": cost, "budget": budget, "no_routing": full}
    write_results(
        "routing_budget_small" if args.small else "routing_budget",
        {
            "figures": figures,
            "models": "real packaged SmolLM2-135M-Instruct + Gemma-3-270M, float32, LoRA r=8 "
            "alpha=16 on q_proj/v_proj",
            "data": f"{n_train} realistic training paths, {n_dev} held-out paths of other questions",
            "settings": SETTINGS,
            "epochs": epochs,
            "seeds": seeds,
            "per_student": detail,
            "rounds": rounds,
        },
    )


if __name__ == "__main__":
    main()
