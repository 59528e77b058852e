"""Report figures as PNG files (matplotlib, drawn off-screen without pyplot's global state)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
from matplotlib.figure import Figure  # noqa: E402

from qrdistill.reporting.tables import ordered, task_label  # noqa: E402

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _grouped_bars(
    ax, groups: list[str], series: dict[str, list[float]], errors: dict | None = None
) -> None:
    """Bars for each group (x) side by side for each series (legend)."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=name, yerr=errors.get(name) if errors else None, capsize=3)
    long_names = max(map(len, groups), default=0) > 10
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(
        groups, rotation=20 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def accuracy_plot(summary: list[dict], path: Path) -> Path:
    """Accuracy per method and student with 95% intervals, one panel per task."""
    tasks = ordered(r["task"] for r in summary)
    fig = Figure(
        figsize=(max(6.0, 1.2 * len(ordered(r["method"] for r in summary)) + 3), 3.6 * len(tasks))
    )
    for index, task in enumerate(tasks):
        rows = [r for r in summary if r["task"] == task]
        methods, students = ordered(r["method"] for r in rows), ordered(r["student"] for r in rows)
        by_key = {(r["method"], r["student"]): r for r in rows}
        series, errors = {}, {}
        for student in students:
            cells = [by_key.get((m, student)) for m in methods]
            series[student] = [100 * r["accuracy"] if r else 0.0 for r in cells]
            errors[student] = [
                [100 * (r["accuracy"] - r["ci_low"]) if r else 0.0 for r in cells],
                [100 * (r["ci_high"] - r["accuracy"]) if r else 0.0 for r in cells],
            ]
        ax = fig.add_subplot(len(tasks), 1, index + 1)
        _grouped_bars(ax, methods, series, errors)
        ax.set_title(f"Test accuracy on {task_label(task)} (95% CI)")
        ax.set_xlabel("method")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 112)  # headroom for the legend above a 100% bar
    return _save(fig, path)


def funnel_plot(per_style: dict[str, dict], path: Path) -> Path:
    styles = list(per_style)
    stages = {
        "generated": "generated",
        "answer correct": "answer_correct",
        "judge kept": "judge_kept",
    }
    series = {label: [per_style[s].get(key) or 0 for s in styles] for label, key in stages.items()}
    fig = Figure(figsize=(max(6.0, 1.1 * len(styles) + 2), 4))
    ax = fig.add_subplot()
    _grouped_bars(ax, styles, series)
    ax.set_title("Quality-filter funnel per reasoning style")
    ax.set_xlabel("reasoning style")
    ax.set_ylabel("teacher paths")
    return _save(fig, path)


def routing_plot(rows: list[dict], path: Path) -> Path:
    """Left: the router's mean gate probability per style and student in the last epoch (the
    paper's Figure 4), with the band of routed shares a router with no preference would give
    (grey) and the share actually routed (black dots). Then one panel per student: each style's
    routed share over the epochs, filled where it leaves the no-preference band."""
    last = max(r["epoch"] for r in rows)
    students, styles = ordered(r["student"] for r in rows), ordered(r["style"] for r in rows)
    cell = {(r["epoch"], r["style"], r["student"]): r for r in rows}
    fig = Figure(figsize=(5 + 4 * len(students), 4))
    ax = fig.add_subplot(1, 1 + len(students), 1)
    width = 0.8 / max(1, len(students))
    for i, student in enumerate(students):
        xs = [g + (i - (len(students) - 1) / 2) * width for g in range(len(styles))]
        here = [cell.get((last, style, student), {}) for style in styles]
        ax.bar(
            xs, [100 * (r.get("mean_prob") or 0) for r in here], width, label=f"{student}: mean p"
        )
        for x, r in zip(xs, here):
            if (
                r.get("band_low") is not None
            ):  # an I-beam over the bar: the range chance alone gives
                low, high = 100 * r["band_low"], 100 * r["band_high"]
                ax.errorbar(
                    [x],
                    [(low + high) / 2],
                    yerr=[[(high - low) / 2]],
                    fmt="none",
                    ecolor="0.3",
                    capsize=5,
                    elinewidth=1.5,
                    zorder=3,
                )
            if r.get("rate") is not None:
                ax.plot([x], [100 * r["rate"]], "ko", markersize=4)
    ax.plot([], [], "ko", markersize=4, label="share routed")
    ax.errorbar(
        [], [], yerr=[], fmt="none", ecolor="0.3", capsize=5, label="no-preference band (95%)"
    )
    ax.set_xticks(range(len(styles)))
    long_names = max(map(len, styles), default=0) > 10
    ax.set_xticklabels(
        styles, rotation=20 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_title(f"Routing per style, epoch {last}")
    ax.set_xlabel("reasoning style")
    ax.set_ylabel("gate probability / share routed (%)")
    ax.set_ylim(0, 112)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    epochs = sorted({r["epoch"] for r in rows})
    for index, student in enumerate(students):
        ax = fig.add_subplot(1, 1 + len(students), index + 2)
        for style in styles:
            here = [cell.get((e, style, student), {}) for e in epochs]
            values = [100 * r["rate"] if r.get("rate") is not None else math.nan for r in here]
            (line,) = ax.plot(epochs, values, label=style)
            outside = [(e, v) for e, v, r in zip(epochs, values, here) if r.get("outside_band")]
            inside = [(e, v) for e, v, r in zip(epochs, values, here) if not r.get("outside_band")]
            ax.plot(
                [e for e, _ in inside],
                [v for _, v in inside],
                "o",
                mfc="white",
                color=line.get_color(),
            )
            ax.plot([e for e, _ in outside], [v for _, v in outside], "o", color=line.get_color())
        ax.set_title(f"Routed to {student}\n(filled: outside the band)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("paths routed (%)")
        ax.set_ylim(0, 105)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def loss_keys(metrics: list[dict]) -> list[str]:
    """Every numeric key starting with 'loss' (e.g. loss/<student>), in order of appearance."""
    return ordered(
        k
        for row in metrics
        for k, v in row.items()
        if k.startswith("loss") and isinstance(v, (int, float)) and not isinstance(v, bool)
    )


def training_plot(metrics: list[dict], method: str, path: Path) -> Path:
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for key in loss_keys(metrics):
        points = [
            (row.get("step", i), row[key])
            for i, row in enumerate(metrics)
            if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
        ]
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="." if len(points) < 50 else None,
            label=key,
        )
    ax.set_title(f"Training loss per student: {method}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
