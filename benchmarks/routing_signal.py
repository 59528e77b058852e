"""Does the router find a moderate signal the real students produce, and only that? Three runs
with the same router, settings and paths: a planted style, the same plant reversed, and a null.

    .venv/bin/python benchmarks/routing_signal.py            # 48 paths (8 per style), 5 epochs
    .venv/bin/python benchmarks/routing_signal.py --small    # 24 paths (4 per style), 3 epochs

Students: the real packaged SmolLM2-135M-Instruct and Gemma-3-270M (float32, LoRA r=8 on q/v).
Paths: realistic ReasoningPath records (real GSM8K and MATH questions with their worked
solutions, templated per style, benchmarks/_common.py).

- planted: before the joint run SmolLM2 is fine-tuned alone, with qrdistill's own trainer, for a
  few epochs on paths of the planted style written for *other* questions, so it has learned the
  style (not the joint run's paths: a moderate plant, not memorisation). The students' mean loss
  per style before the joint run is recorded, so the size of the plant is on file.
- reversed: the same plant given to Gemma instead: the preference must turn round.
- null: both students are the same SmolLM2 with attention dropout and a learning rate of 1e-9, so
  their losses on a path differ only by zero-mean noise and neither learns (gradient
  checkpointing on, for memory only): no style may be called a preference, in any epoch.

Then QR-Distill (learned routing, peer teaching, default routing settings, batch 8 as in the
paper) trains on every path. A cell counts as a preference only as the report counts it
(`outside_band`: outside the binomial band, beyond the shadow router's null band, and the same
way in both halves of the questions; docs/METHOD.md, "Routing").

Writes benchmarks/results/routing_signal.json (per run: losses per style before, per-epoch
routing rows, gaps) and routing_signal.png (the planted style's mean gate probability per epoch in
each run).
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
    path_losses,
    realistic_paths,
    write_paths,
    write_results,
)

PLANTED = "program"
SMOL, GEMMA = (s["name"] for s in REAL_STUDENTS)
TEACH_EPOCHS, TEACH_LR = 8, 2e-3


def teach(student: dict, paths_file: Path, out: Path) -> Path:
    """`student` after learning the planted style on other questions (qrdistill's trainer, one
    student, LoRA), merged into a plain model folder to start the joint run from."""
    from qrdistill.training import train
    from qrdistill.training.config import TrainConfig
    from qrdistill.training.export import merge_student

    cfg = TrainConfig(
        students=[{**student, "lr": TEACH_LR}],
        objective="qr_distill",
        routing={"mode": "all"},
        peer={"enabled": False},
        epochs=TEACH_EPOCHS,
        batch_size=4,
        max_length=512,
        progress=False,
        checkpoint_every=10_000,
        seed=0,
    )
    trained = train(cfg, paths_file, out) / "students" / student["name"]
    return merge_student(trained, out / "merged" / student["name"])


def twins(model: Path) -> list[dict]:
    """Two students that are the same noisy model and do not learn: the null. Gradient
    checkpointing because attention dropout sends CPU attention down the path that keeps every
    layer's [batch, heads, T, T] weights and masks (19 GB for the two, OOM-killed without it);
    the losses, and so the router's evidence, are the same."""
    return [
        {"name": f"{SMOL}-{t}", "model": str(model), "lr": 1e-9, "gradient_checkpointing": True}
        for t in "ab"
    ]


def noisy_twin(out: Path) -> Path:
    """SmolLM2 with attention dropout: two copies of it give losses that differ by noise only."""
    from transformers import AutoModelForCausalLM

    from qrdistill.models import load_tokenizer, resolve_model

    source = resolve_model(REAL_STUDENTS[0]["model"])
    model = AutoModelForCausalLM.from_pretrained(source)
    model.config.attention_dropout = 0.1
    model.save_pretrained(out)
    load_tokenizer(source).save_pretrained(out)
    return out


def style_losses(cfg, paths_file: Path, out: Path) -> dict:
    """Each student's mean per-path loss per style on every path, no training (every gate open)."""
    losses = path_losses(cfg, paths_file, out)
    return {
        f"{style}/{name}": round(sum(v) / len(v), 3) for (style, name), v in sorted(losses.items())
    }


def interaction(before: dict, first: str, second: str) -> float:
    """The planted style's advantage for `first` over `second` before the joint run: each
    student's loss on the planted style minus its mean over the other styles, second's minus
    first's (positive: the planted style suits `first`), in the per-path loss's units."""

    def relative(name: str) -> float:
        mine = {k.split("/")[0]: v for k, v in before.items() if k.endswith(f"/{name}")}
        others = [v for k, v in mine.items() if k != PLANTED]
        return mine[PLANTED] - sum(others) / len(others)

    return round(relative(second) - relative(first), 4)


def prob_gap(rows: list[dict], epoch: int, style: str, first: str, second: str) -> float:
    prob = {
        r["student"]: r["mean_prob"] for r in rows if r["epoch"] == epoch and r["style"] == style
    }
    return round(prob[first] - prob[second], 3)


def joint_run(label: str, students: list[dict], paths_file: Path, tmp: Path, epochs: int) -> dict:
    from qrdistill.training import train
    from qrdistill.training.config import TrainConfig
    from qrdistill.utils.io import read_jsonl

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
    before = style_losses(cfg, paths_file, tmp / label / "probe")
    emit({"run": label, "mean_loss_per_style_before": before})
    start = time.perf_counter()
    out = train(cfg, paths_file, tmp / label / "joint")
    rows = read_jsonl(out / "routing.jsonl")
    first, second = (s["name"] for s in students)
    epochs_seen = sorted({r["epoch"] for r in rows})
    gaps = {e: prob_gap(rows, e, PLANTED, first, second) for e in epochs_seen}
    emit({"run": label, "planted_style_prob_gap_per_epoch": gaps})
    return {
        "students": [s["name"] for s in students],
        "mean_loss_per_style_before": before,
        "planted_interaction_before": interaction(before, first, second),
        "planted_style_prob_gap_per_epoch": gaps,
        "preferences_per_epoch": {
            e: [
                f"{r['style']}->{r['student']}"
                for r in rows
                if r["epoch"] == e and r["outside_band"]
            ]
            for e in epochs_seen
        },
        "shared_share_per_epoch": {
            e: next(r["shared_share"] for r in rows if r["epoch"] == e) for e in epochs_seen
        },
        "joint_s": round(time.perf_counter() - start, 1),
        "config": cfg.model_dump(mode="json"),
        "routing": rows,
    }


def plot(runs: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4))
    for index, (label, run) in enumerate(runs.items()):
        ax = fig.add_subplot(1, len(runs), index + 1)
        rows = run["routing"]
        epochs = sorted({r["epoch"] for r in rows})
        for student, colour in zip(run["students"], ("tab:blue", "tab:orange")):
            by_epoch = [
                [r for r in rows if r["student"] == student and r["epoch"] == e] for e in epochs
            ]
            planted = [
                next(r["mean_prob"] for r in cells if r["style"] == PLANTED) for cells in by_epoch
            ]
            others = [
                [r["mean_prob"] for r in cells if r["style"] != PLANTED] for cells in by_epoch
            ]
            ax.plot(epochs, planted, "o-", color=colour, label=f"{student}: {PLANTED}")
            ax.plot(
                epochs,
                [sum(o) / len(o) for o in others],
                "s--",
                color=colour,
                alpha=0.6,
                label=f"{student}: other styles (mean)",
            )
            # The null band around the student's mean over styles (unweighted: a sketch).
            centre = [sum(r["mean_prob"] for r in cells) / len(cells) for cells in by_epoch]
            band = [cells[0]["null_band"] for cells in by_epoch]
            low = [c - b for c, b in zip(centre, band)]
            high = [c + b for c, b in zip(centre, band)]
            ax.fill_between(epochs, low, high, color=colour, alpha=0.1)
        ax.set_title(f"{label}: mean gate probability (shaded: null band)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.05)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=["planted", "reversed", "null"],
        default=["planted", "reversed", "null"],
        help="which runs (default all three; results name the ones run)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="joint epochs (default 5, --small 3)"
    )
    args = parser.parse_args()
    per_style = 4 if args.small else 8
    epochs = args.epochs or (3 if args.small else 5)

    tmp = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    paths = realistic_paths(6 * per_style)  # six styles in turn
    paths_file = write_paths(paths, tmp / "paths.jsonl")
    # The plant: the planted style written for other questions than the joint run's.
    joint_questions = {p["question_id"] for p in paths}
    lesson = [
        p
        for p in realistic_paths(6 * per_style, styles=[PLANTED], seed=1)
        if p["question_id"] not in joint_questions
    ][: 2 * per_style]
    lesson_file = write_paths(lesson, tmp / "lesson.jsonl")

    start = time.perf_counter()
    needs = {"planted": REAL_STUDENTS[0], "reversed": REAL_STUDENTS[1]}
    taught = {
        needs[r]["name"]: teach(needs[r], lesson_file, tmp / f"teach-{needs[r]['name']}")
        for r in args.runs
        if r in needs
    }
    teach_s = time.perf_counter() - start
    students = {
        "planted": lambda: [{**REAL_STUDENTS[0], "model": str(taught[SMOL])}, REAL_STUDENTS[1]],
        "reversed": lambda: [REAL_STUDENTS[0], {**REAL_STUDENTS[1], "model": str(taught[GEMMA])}],
        "null": lambda: twins(noisy_twin(tmp / "noisy-smollm2")),
    }
    runs = {r: joint_run(r, students[r](), paths_file, tmp, epochs) for r in args.runs}
    last = epochs - 1

    figures = {}
    # The plant and its reversal: the same figures, with the gap's expected sign turned round.
    for label, taught_to, target in (("planted", SMOL, ">= 0.3"), ("reversed", GEMMA, "<= -0.3")):
        if label not in runs:
            continue
        run = runs[label]
        figures[f"{label}_interaction_before"] = figure(
            run["planted_interaction_before"],
            f"nats per token: the planted style's advantage for {SMOL} before the joint run "
            f"(taught to {taught_to})",
            "none (context: the plant's size)",
        )
        figures[f"{label}_style_prob_gap_last_epoch"] = figure(
            run["planted_style_prob_gap_per_epoch"][last],
            f"mean gate probability on the planted style, {SMOL} minus {GEMMA}",
            target,
        )
        figures[f"{label}_preference_called"] = figure(
            int(f"{PLANTED}->{taught_to}" in run["preferences_per_epoch"][last]),
            "cells (0/1)",
            "== 1",
        )
    if "null" in runs:
        null_rows = runs["null"]["routing"]
        figures["null_cells_called_preference"] = figure(
            sum(r["outside_band"] for r in null_rows), "cells over every epoch", "== 0"
        )
        figures["null_max_abs_prob_lean"] = figure(
            round(max(abs(r["mean_prob"] - 0.5) for r in null_rows), 3),
            "max |mean gate probability - 1/2| over cells and epochs",
            "<= 0.1",
        )
    name = ("routing_signal_small" if args.small else "routing_signal") + (
        "" if len(args.runs) == 3 else "_" + "_".join(args.runs)
    )
    picture = plot(runs, RESULTS_DIR / f"{name}.png")
    write_results(
        name,
        {
            "figures": figures,
            "models": "real packaged SmolLM2-135M-Instruct + Gemma-3-270M, float32, LoRA r=8 "
            "alpha=16 on q_proj/v_proj; null: two copies of SmolLM2 with attention dropout 0.1, "
            "lr 1e-9",
            "data": f"{len(paths)} realistic paths, {per_style} per style; planted style: {PLANTED}",
            "plant": f"one student fine-tuned alone (qrdistill trainer, LoRA, lr {TEACH_LR}, "
            f"{TEACH_EPOCHS} epochs) on {len(lesson)} {PLANTED} paths of other questions, merged",
            "teach_s": round(teach_s, 1),
            "runs": runs,
            "plot": str(picture.relative_to(RESULTS_DIR.parent.parent)),
        },
    )


if __name__ == "__main__":
    main()
