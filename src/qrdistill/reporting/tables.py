"""Tables of a report, built from the run's artifacts (see docs/ARCHITECTURE.md for the formats)."""

from __future__ import annotations

from collections.abc import Callable

from qrdistill.reporting.document import Table
from qrdistill.reporting.paper import PAPER, TASK_LABELS, method_label

MISSING = "–"


def pct(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{100 * value:.{digits}f}"


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task)


def ordered(values) -> list:
    """Unique values in order of first appearance."""
    return list(dict.fromkeys(values))


def accuracy_cell(row: dict) -> str:
    return pct(row["accuracy"])


def mean_cell(rows: list[dict]) -> str:
    """The unweighted mean over tasks (as in the paper)."""
    return pct(sum(r["accuracy"] for r in rows) / len(rows))


def accuracy_table(
    summary: list[dict],
    methods: list[str],
    caption: str,
    *,
    cell: Callable[[dict], str] = accuracy_cell,
    average: Callable[[list[dict]], str] | None = mean_cell,
) -> Table:
    """The paper's Table 1 shape: one row per method, per student a column per task (+ average).

    Accuracy in %. `cell` renders one summary row; `average` the rows of every task of one
    method and student (the column is shown only with more than one task, and a cell only when
    the method has every task for that student); None leaves the column out.
    """
    found = {(r["method"], r["student"], r["task"]): r for r in summary}
    students = ordered(r["student"] for r in summary if r["method"] in methods)
    tasks = ordered(r["task"] for r in summary if r["method"] in methods)
    averaged = average is not None and len(tasks) > 1
    columns = [
        (student, task) for student in students for task in [*tasks, *(["avg"] if averaged else [])]
    ]
    headers = ["method", "paper row"] + [
        f"{student} · {task_label(task)}" for student, task in columns
    ]
    rows = []
    for method in methods:
        row = [method, method_label(method) or MISSING]
        for student, task in columns:
            if task == "avg":
                every = [found.get((method, student, t)) for t in tasks]
                row.append(average(every) if None not in every else MISSING)
            else:
                one = found.get((method, student, task))
                row.append(cell(one) if one is not None else MISSING)
        rows.append(row)
    return Table(headers, rows, caption)


def lm_eval_cell(scores: dict[str, float] | None) -> str:
    """A summary row's accuracies under lm-eval's conventions: "strict-match 40.00, ..." (the
    names as lm-eval writes its filters; the report reads artifacts, not evaluation code)."""
    if not scores:
        return MISSING
    return ", ".join(f"{name.replace('_', '-')} {pct(value)}" for name, value in scores.items())


def interval_table(summary: list[dict]) -> Table:
    """Every result: n, correct, our accuracy with its Wilson interval, and beside it the
    accuracy under lm-evaluation-harness's conventions for the task (`lm_eval_scores`)."""
    rows = [
        [
            r["method"],
            r["student"],
            task_label(r["task"]),
            str(r["n"]),
            str(r["correct"]),
            pct(r["accuracy"]),
            f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]",
            lm_eval_cell(r.get("lm_eval")),
        ]
        for r in summary
    ]
    return Table(
        [
            "method",
            "student",
            "task",
            "n",
            "correct",
            "accuracy %",
            "95% CI (Wilson) %",
            "lm-eval conventions, accuracy %",
        ],
        rows,
        "Every result with its number of questions and 95% confidence interval, and its "
        "accuracy under lm-evaluation-harness's conventions for the task, comparable with "
        "published lm-eval figures: strict string matches on the answer (ours compares answers "
        "symbolically), and acc / acc-norm where the harness scores the task by the "
        "log-likelihood of each option, with no generation",
    )


def paired_table(rows: list[dict]) -> Table:
    """Each method against the reference on the same questions (evaluate/paired.json)."""
    reference = rows[0]["reference"] if rows else "the reference"
    body = [
        [
            r["method"],
            r["student"],
            task_label(r["task"]),
            str(r["n"]),
            f"{100 * r['difference']:+.1f}",
            f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]",
            f"{r['only_method']} / {r['only_reference']}",
            f"{r['p_mcnemar']:.3g}",
            f"{r['p_holm']:.3g}" if r.get("p_holm") is not None else "",
            ", ".join(
                f"{name.replace('_', '-')} {100 * c['difference']:+.1f} "
                f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]"
                for name, c in (r.get("lm_eval") or {}).items()
            )
            or MISSING,
        ]
        for r in rows
    ]
    return Table(
        [
            "method",
            "student",
            "task",
            "n",
            f"difference to {reference} (points)",
            "95% CI (paired bootstrap)",
            f"right only with method / only with {reference}",
            "McNemar p (exact)",
            "p, Holm-adjusted over the table",
            "difference under lm-eval conventions (points, 95% CI)",
        ],
        body,
        f"Each method against {reference} on the same questions; a positive difference favours "
        "the method",
    )


def seeds_table(rows: list[dict], what: str, signed: bool = False) -> Table:
    """Mean and sd over seeds per (method, student, task) (RUN/seeds.json), with each seed's value
    and, for paired rows, each seed's McNemar p."""
    sign = "+" if signed else ""

    def cell(r: dict) -> str:
        sd = f" ± {100 * r['sd']:.1f}" if r["sd"] is not None else ""
        return f"{100 * r['mean']:{sign}.1f}{sd}"

    paired = any("p_mcnemar" in r for r in rows)
    body = [
        [
            r["method"],
            r["student"],
            task_label(r["task"]),
            str(r["n"]),
            str(r["seeds"]),
            cell(r),
            ", ".join(f"{100 * v:{sign}.1f}" for v in r["values"]),
            *([", ".join(f"{p:.2g}" for p in r["p_mcnemar"])] if paired else []),
        ]
        for r in rows
    ]
    headers = ["method", "student", "task", "n", "seeds", f"{what}, mean ± sd", "per seed"]
    return Table(
        headers + (["McNemar p per seed"] if paired else []),
        body,
        f"{what} over seeds (sd: sample standard deviation across seeds)",
    )


def paper_table(table: dict, tasks: tuple[str, ...], caption: str) -> Table:
    students = ordered(student for per_student in table.values() for student in per_student)
    headers = ["method (paper)"] + [f"{student} · {task}" for student in students for task in tasks]
    rows = [
        [method] + [f"{v:.2f}" for student in students for v in per_student[student]]
        for method, per_student in table.items()
    ]
    return Table(headers, rows, f"{caption}: reported in {PAPER}, not measured by this run")


def funnel_table(per_style: dict[str, dict], total: dict | None) -> Table:
    """Paths per style through the filter: generated, answer-correct, kept by the judge."""

    def count(counts: dict, key: str) -> str:
        value = counts.get(key)
        if value is None:
            return MISSING
        generated = counts.get("generated")
        return f"{value} ({100 * value / generated:.0f}%)" if generated else str(value)

    entries = [*per_style.items(), *([("total", total)] if total else [])]
    rows = [
        [
            style,
            str(c.get("generated", MISSING)),
            count(c, "answer_correct"),
            count(c, "judge_kept"),
        ]
        for style, c in entries
    ]
    return Table(
        ["style", "generated", "answer correct", "judge kept"],
        rows,
        "Teacher paths per reasoning style through the quality filter (% of generated)",
    )


def routing_table(rows: list[dict], epoch: int) -> Table:
    """Per style (rows) and student (columns) in one epoch: the share of paths routed, the mean
    gate probability, and the band a router with no preference would give at that count (the
    paper's Figure 4, with the noise it would hide). A * marks a share outside its band."""
    students = ordered(r["student"] for r in rows)
    styles = ordered(r["style"] for r in rows)
    cell = {(r["style"], r["student"]): r for r in rows}

    def text(style: str, student: str) -> str:
        r = cell.get((style, student))
        if r is None or r.get("rate") is None:
            return MISSING
        parts = [f"{100 * r['rate']:.0f}%" + ("*" if r.get("outside_band") else "")]
        if r.get("count") is not None and r.get("total"):
            parts[0] += f" ({r['count']}/{r['total']})"
        if r.get("mean_prob") is not None:
            parts.append(f"p {r['mean_prob']:.2f}")
        if r.get("band_low") is not None:
            parts.append(f"band {100 * r['band_low']:.0f}–{100 * r['band_high']:.0f}%")
        return ", ".join(parts)

    return Table(
        ["style"] + students,
        [[style] + [text(style, s) for s in students] for style in styles],
        f"Share of each style's paths routed to each student in epoch {epoch}, the router's mean "
        "gate probability p, and the 95% band of shares a router with no preference would give "
        "at that count (* = a preference: outside the band and, where the log has them, beyond "
        "the router's null band and leaning the same way in both halves of the questions)",
    )


def _undecided_caveat(rows: list[dict]) -> str:
    """What a quiet routing table cannot conclude, given how far this router's gates moved."""
    counts = f"{min(r['total'] for r in rows)}–{max(r['total'] for r in rows)} paths a style"
    null_band = max(r["null_band"] for r in rows)
    moved = max(
        (abs(r["mean_prob"] - 0.5) for r in rows if r.get("mean_prob") is not None), default=None
    )
    caveat = (
        " The router has no evidence that any style suits one student more than another. "
        "That is not evidence that the styles suit every student equally: "
    )
    if null_band == 0 and moved == 0:
        # Neither the router nor its shadow left 1/2: the margin, not a band, was the bar.
        return caveat + (
            f"with {counts} in an epoch, no student's predicted advantage passed the margin "
            "(routing.margin standard errors), so every gate stayed at 1/2 and the shares above "
            "are the exploration share and random draws."
        )
    return caveat + (
        f"with {counts} in an epoch, a preference must move a style's mean gate probability "
        f"more than {null_band:.2f} (the null band) to show."
    )


def routing_verdict(rows: list[dict]) -> str:
    """One sentence: does any (style, student) cell leave the no-preference band (and, in logs
    that have one, the null band of this router's shadow fed permuted evidence)?"""
    outside = [r for r in rows if r.get("outside_band")]
    if not any(r.get("band_low") is not None for r in rows):
        return "This run's routing log has no no-preference band; rerun training to get one."
    shadow = any(r.get("null_band") is not None for r in rows)
    if not outside:
        return (
            "No (style, student) cell leaves the band that a router with no preference would give "
            "at these counts: the differences between styles in this table are within chance."
            + (_undecided_caveat(rows) if shadow else "")
        )
    cells = "; ".join(
        f"{r['style']} → {r['student']} {100 * r['rate']:.0f}% (band "
        f"{100 * r['band_low']:.0f}–{100 * r['band_high']:.0f}%)"
        for r in outside
    )
    if shadow:
        return (
            f"{len(outside)} of {len(rows)} (style, student) cells leave the no-preference band, "
            "with a mean gate probability further from the student's mean than this router puts "
            "any style when paths and losses are paired at random (its null band), leaning the "
            "same way in both halves of the questions: a preference the router found in this "
            f"run's evidence, in one epoch of one run (one seed: rerun with another `train.seed` "
            f"to see it hold): {cells}."
        )
    return (
        f"{len(outside)} of {len(rows)} (style, student) cells leave the no-preference band, a "
        f"preference beyond chance at the 95% level (with this many cells, about "
        f"{0.05 * len(rows):.1f} would by chance alone): {cells}."
    )
