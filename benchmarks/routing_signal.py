"""Does the router find a signal the real students produce? A planted style, per epoch.

    .venv/bin/python benchmarks/routing_signal.py            # 48 paths (8 per style), 6 epochs, batch 8
    .venv/bin/python benchmarks/routing_signal.py --small    # 24 paths (4 per style), 3 epochs

Students: the real packaged SmolLM2-135M-Instruct and Gemma-3-270M (float32, LoRA r=8 on q/v).
Paths: realistic ReasoningPath records (real GSM8K/StrategyQA questions and solutions, templated
per style, benchmarks/_common.py). The plant: before the joint run, SmolLM2 is fine-tuned alone,
with qrdistill's own trainer, on the planted style's paths, so it already predicts that style
well and Gemma does not (the students' mean loss per style, before the joint run, is recorded to
show it). Then QR-Distill (learned routing, peer teaching, default settings, batch 8 as in the
paper) trains both on every path. If the router follows the students' learning state, the planted
style goes to SmolLM2 more than to Gemma, beyond the band a router with no preference would
give; the other styles should show no such gap.

Writes benchmarks/results/routing_signal.json (per-epoch rates and mean probabilities, the
band, the gap) and routing_signal.png (the planted style against the others, per epoch).
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
    RESULTS_DIR,
    emit,
    figure,
    realistic_paths,
    write_paths,
    write_results,
)

PLANTED = "program"
KNOWS, OTHER = (s["name"] for s in REAL_STUDENTS)  # SmolLM2 is taught the planted style


def teach(paths_file: Path, out: Path, epochs: int) -> Path:
    """SmolLM2 after learning the planted style's paths (qrdistill's trainer, one student),
    merged into a plain model folder to start the joint run from."""
    from qrdistill.training import train
    from qrdistill.training.config import TrainConfig
    from qrdistill.training.export import merge_student

    cfg = TrainConfig(
        students=[{**REAL_STUDENTS[0], "lr": 2e-3}],
        objective="qr_distill",
        routing={"mode": "all"},
        peer={"enabled": False},
        epochs=epochs,
        batch_size=4,
        max_length=512,
        progress=False,
        checkpoint_every=10_000,
        seed=0,
    )
    trained = train(cfg, paths_file, out) / "students" / KNOWS
    return merge_student(trained, out / "merged" / KNOWS)


def style_losses(cfg, paths_file: Path, out: Path) -> dict:
    """Each student's mean per-path loss per style on every path, no training (every gate open)."""
    import torch

    from qrdistill.training.data import collate
    from qrdistill.training.recipe import Recipe

    recipe = Recipe(
        cfg.model_copy(
            update={
                "routing": cfg.routing.model_copy(update={"mode": "all"}),
                "peer": cfg.peer.model_copy(update={"enabled": False}),
            }
        ),
        paths_file,
        out,
    )
    model = recipe.acc.unwrap_model(recipe.model).eval()
    sums: dict = {}
    with torch.no_grad():
        for start in range(0, len(recipe.data), 8):
            rows = list(range(start, min(start + 8, len(recipe.data))))
            inputs = [
                collate(
                    [recipe.data.encoded[n][i] for i in rows], recipe.tokenizers[n].pad_token_id
                )
                for n in recipe.names
            ]
            result = model(
                inputs,
                chars=recipe.chars[rows],
                fixed_gates=torch.ones(len(rows), len(recipe.names)),
            )
            for k, i in enumerate(rows):
                for j, name in enumerate(recipe.names):
                    key = (recipe.data.items[i].style, name)
                    sums.setdefault(key, []).append(float(result.per_path[k, j]))
    return {
        f"{style}/{name}": round(sum(v) / len(v), 3) for (style, name), v in sorted(sums.items())
    }


def planted_gap(rows: list[dict], epoch: int, style: str) -> float:
    rate = {r["student"]: r["rate"] for r in rows if r["epoch"] == epoch and r["style"] == style}
    return rate[KNOWS] - rate[OTHER]


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = sorted({r["epoch"] for r in rows})
    fig = Figure(figsize=(11, 4))
    for index, (key, label) in enumerate(
        (("rate", "share of paths routed"), ("mean_prob", "mean gate probability"))
    ):
        ax = fig.add_subplot(1, 2, index + 1)
        for student, colour in ((KNOWS, "tab:blue"), (OTHER, "tab:orange")):
            planted = [
                next(
                    r[key]
                    for r in rows
                    if r["epoch"] == e and r["style"] == PLANTED and r["student"] == student
                )
                for e in epochs
            ]
            others = [
                sum(
                    r[key]
                    for r in rows
                    if r["epoch"] == e and r["style"] != PLANTED and r["student"] == student
                )
                / sum(
                    1
                    for r in rows
                    if r["epoch"] == e and r["style"] != PLANTED and r["student"] == student
                )
                for e in epochs
            ]
            ax.plot(
                epochs, planted, "o-", color=colour, label=f"{student}: planted style ({PLANTED})"
            )
            ax.plot(
                epochs,
                others,
                "s--",
                color=colour,
                alpha=0.6,
                label=f"{student}: other styles (mean)",
            )
        if key == "rate":  # the no-preference band of the planted cells, per student
            for student, colour in ((KNOWS, "tab:blue"), (OTHER, "tab:orange")):
                cells = [
                    next(
                        r
                        for r in rows
                        if r["epoch"] == e and r["style"] == PLANTED and r["student"] == student
                    )
                    for e in epochs
                ]
                ax.fill_between(
                    epochs,
                    [c["band_low"] for c in cells],
                    [c["band_high"] for c in cells],
                    color=colour,
                    alpha=0.12,
                )
        ax.set_title(
            f"{label} per epoch (shaded: no-preference band)"
            if key == "rate"
            else f"{label} per epoch"
        )
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.05)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument(
        "--epochs", type=int, default=None, help="joint epochs (default 4, --small 3)"
    )
    args = parser.parse_args()
    per_style = 4 if args.small else 8
    epochs = args.epochs or (3 if args.small else 6)

    from qrdistill.training import train
    from qrdistill.training.config import TrainConfig
    from qrdistill.utils.io import read_jsonl

    tmp = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    paths = realistic_paths(6 * per_style)  # six styles in turn
    paths_file = write_paths(paths, tmp / "paths.jsonl")
    planted_file = write_paths([p for p in paths if p["style"] == PLANTED], tmp / "planted.jsonl")

    start = time.perf_counter()
    knows = teach(planted_file, tmp / "teach", epochs=10)
    teach_s = time.perf_counter() - start
    students = [{**REAL_STUDENTS[0], "model": str(knows)}, REAL_STUDENTS[1]]
    cfg = TrainConfig(
        students=students,
        objective="qr_distill",
        epochs=epochs,
        batch_size=8,
        max_length=512,
        progress=True,
        checkpoint_every=10_000,
        seed=0,
        routing={"cache_dir": str(tmp / "emb")},
    )
    losses_before = emit(
        {"mean_loss_per_style_before_joint_training": style_losses(cfg, paths_file, tmp / "probe")}
    )
    start = time.perf_counter()
    out = train(cfg, paths_file, tmp / "joint")
    joint_s = time.perf_counter() - start
    rows = read_jsonl(out / "routing.jsonl")
    last = max(r["epoch"] for r in rows)
    styles = sorted({r["style"] for r in rows})
    gaps = {
        e: {s: round(planted_gap(rows, e, s), 3) for s in styles}
        for e in sorted({r["epoch"] for r in rows})
    }
    for epoch, by_style in gaps.items():
        emit({"epoch": epoch, "gap_knows_minus_other": by_style})
    planted_last = [r for r in rows if r["epoch"] == last and r["style"] == PLANTED]
    other_gaps = [abs(g) for s, g in gaps[last].items() if s != PLANTED]
    figures = {
        "planted_style_gap_last_epoch": figure(
            gaps[last][PLANTED], f"share routed to {KNOWS} minus share routed to {OTHER}", ">= 0.3"
        ),
        "planted_cells_outside_no_preference_band": figure(
            sum(r["outside_band"] for r in planted_last), "cells of 2", ">= 1"
        ),
        "largest_gap_other_styles_last_epoch": figure(
            max(other_gaps), "absolute gap", "none (context: chance at this count)"
        ),
        "unrouted_share_max": figure(
            max(r["unrouted_share"] for r in rows), "share of paths", "== 0"
        ),
    }
    picture = plot(
        rows, RESULTS_DIR / ("routing_signal_small.png" if args.small else "routing_signal.png")
    )
    write_results(
        "routing_signal_small" if args.small else "routing_signal",
        {
            "figures": figures,
            "models": "real packaged SmolLM2-135M-Instruct (taught the planted style first) + Gemma-3-270M, "
            "float32, LoRA r=8 alpha=16 on q_proj/v_proj",
            "data": f"{len(paths)} realistic paths, {per_style} per style; planted style: {PLANTED}",
            "plant": f"{KNOWS} fine-tuned alone (qrdistill trainer, LoRA, lr 2e-3, 10 epochs) on the {per_style} "
            f"{PLANTED} paths, merged, then used as the joint run's first student",
            "mean_loss_per_style_before": losses_before[
                "mean_loss_per_style_before_joint_training"
            ],
            "config": cfg.model_dump(mode="json"),
            "teach_s": round(teach_s, 1),
            "joint_s": round(joint_s, 1),
            "gap_per_epoch": gaps,
            "routing": rows,
            "plot": str(picture.relative_to(RESULTS_DIR.parent.parent)),
        },
    )


if __name__ == "__main__":
    main()
