"""`build_suite_report(run_dir)`: one report over a suite's entries (qrdistill.suite), in the
paper's layouts, each table beside the paper's own numbers, labelled as the paper's.

- Table 1: students x methods x tasks, plus the average over tasks with its 95% interval
  (evaluation.metrics.mean_with_interval over the per-task Wilson intervals; over several seeds,
  mean ± sd of the per-seed averages);
- Table 2: the ablations against the full method on ARC, ANLI and Date, those of them the suite has;
- Table 3: seconds per epoch of each method's optimizer steps (train/<method>/summary.json
  `epoch_seconds`), joint (qr_distill) against separate (answer_aug: every student computes
  every answer-correct path, no routing and no peer teaching, the compute of training each
  alone on all the paths);
- sample efficiency: an entry with `data.train_fraction` < 1 beside the entry of the same task
  with all the training data.

It reads only what each entry's run wrote (evaluate/summary.json, seeds.json, data/manifest.json,
train/*/summary.json) and RUN/suite.json; an entry not yet evaluated is named, not an error.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from qrdistill.evaluation.metrics import mean_with_interval
from qrdistill.reporting import tables
from qrdistill.reporting.document import Document, Heading, Paragraph, Table, to_html, to_markdown
from qrdistill.reporting.paper import (
    FULL_METHOD,
    PAPER,
    SAMPLE_EFFICIENCY,
    SAMPLE_EFFICIENCY_SHARES,
    TABLE1,
    TABLE1_TASKS,
    TABLE2,
    TABLE2_TASK_NAMES,
    TABLE2_TASKS,
    TABLE3,
    TABLE4,
    TABLE4_TASKS,
    is_ablation,
)
from qrdistill.utils.io import atomic_open, read_json

MANIFEST = "suite.json"
JOINT, SEPARATE = FULL_METHOD, "answer_aug"
PAPER_SETTING = (
    "the paper's numbers, reported in {paper} with Mistral-7B-Instruct and Gemma-7B-it students "
    "and a Gemini-1.5-Pro teacher; not measured by this run, and not comparable with it in "
    "absolute terms"
).format(paper=PAPER)


@dataclass
class Entry:
    """One suite entry's run, as the report reads it. Its accuracy rows carry the entry's name
    as their `task`, so two entries of one task (a training fraction) stay apart."""

    name: str
    root: Path
    task: str
    train_fraction: float
    rows: list[dict]

    @property
    def full(self) -> bool:
        return self.train_fraction == 1.0


def _accuracy_rows(root: Path) -> list[dict]:
    """Single-student rows: evaluate/summary.json, or over several seeds seeds.json (the mean
    as `accuracy`, with `sd` and the per-seed `values`)."""
    if (root / "seeds.json").exists():
        rows = [{**r, "accuracy": r["mean"]} for r in read_json(root / "seeds.json")["accuracy"]]
    elif (root / "evaluate" / "summary.json").exists():
        rows = read_json(root / "evaluate" / "summary.json")
    else:
        return []
    return [r for r in rows if not r["student"].startswith("ensemble:")]


def load_entries(run_dir: Path) -> list[Entry]:
    entries = []
    for name, info in read_json(run_dir / MANIFEST)["entries"].items():
        root = run_dir / info["folder"]
        rows = [{**r, "task": name} for r in _accuracy_rows(root)]
        entries.append(Entry(name, root, info["task"], info["train_fraction"], rows))
    return entries


# --------------------------------------------------------------------------- cells
def seeds_cell(row: dict) -> str:
    """Accuracy %, with the sd over seeds where there are several."""
    if row.get("sd") is None:
        return tables.pct(row["accuracy"])
    return f"{tables.pct(row['accuracy'])} ± {100 * row['sd']:.2f}"


def average_cell(rows: list[dict]) -> str:
    """The mean over tasks: with its 95% interval from the per-task Wilson intervals, or over
    several seeds mean ± sd of each seed's mean over tasks."""
    per_seed = [r.get("values") for r in rows]
    if all(v is not None and len(v) > 1 for v in per_seed) and len({len(v) for v in per_seed}) == 1:
        averages = [statistics.fmean(seed) for seed in zip(*per_seed)]
        return f"{tables.pct(statistics.fmean(averages))} ± {100 * statistics.stdev(averages):.2f}"
    mean, low, high = mean_with_interval(
        [r["accuracy"] for r in rows], [r["ci_low"] for r in rows], [r["ci_high"] for r in rows]
    )
    return f"{tables.pct(mean)} [{tables.pct(low)}, {tables.pct(high)}]"


def _table(rows: list[dict], methods: list[str], caption: str, average=average_cell) -> Table:
    return tables.accuracy_table(rows, methods, caption, cell=seeds_cell, average=average)


# --------------------------------------------------------------------------- sections
def _entries_section(doc: Document, entries: list[Entry]) -> None:
    doc.add(
        Heading("Tasks of this suite"),
        Table(
            ["entry", "task", "training data", "run directory", "evaluated"],
            [
                [
                    e.name,
                    e.task,
                    f"{100 * e.train_fraction:g} %",
                    str(e.root),
                    "yes" if e.rows else "not yet",
                ]
                for e in entries
            ],
            "Each entry is a run of its own, with its own report (RUN/<entry>/report/report.md)",
        ),
    )


def _table1_section(doc: Document, entries: list[Entry]) -> None:
    rows = [r for e in entries if e.full for r in e.rows]
    methods = tables.ordered(r["method"] for r in rows)
    doc.add(
        Heading("Table 1: methods and baselines on every task"),
        Paragraph(
            "Accuracy in %, each student answering alone (greedy decoding), on each task's test "
            "split. 'avg' is the unweighted mean over tasks, as in the paper, with its 95% "
            "interval from the per-task Wilson intervals (half-widths added in quadrature over "
            "the independent test sets, divided by the number of tasks); over several seeds, "
            "every cell is mean ± sd over the seeds and 'avg' the mean ± sd of each seed's mean."
        ),
    )
    main = [m for m in methods if not is_ablation(m)]
    if main:
        doc.add(_table(rows, main, "This run: methods and baselines (the paper's Table 1)"))
    else:
        doc.add(Paragraph("Not evaluated yet: no entry has test results.", note=True))
    doc.add(
        Paragraph(f"Beside it, {PAPER_SETTING}.", note=True),
        tables.paper_table(TABLE1, TABLE1_TASKS, "Paper, Table 1, accuracy %"),
        tables.paper_table(
            TABLE4,
            TABLE4_TASKS,
            "Paper, Table 4 (smaller students, the same teacher), accuracy %",
        ),
    )


def _table2_section(doc: Document, entries: list[Entry]) -> None:
    chosen = [e for e in entries if e.full and e.task in TABLE2_TASK_NAMES]
    rows = [r for e in chosen for r in e.rows]
    ablations = tables.ordered(r["method"] for r in rows if is_ablation(r["method"]))
    doc.add(Heading("Table 2: ablations on ARC, ANLI and Date"))
    if not ablations:
        doc.add(
            Paragraph(
                "Not in this suite: it needs an ablation method (no_filter, no_routing, no_peer, "
                "...) evaluated on arc_challenge, anli or date_understanding.",
                note=True,
            )
        )
    else:
        reference = [FULL_METHOD] if any(r["method"] == FULL_METHOD for r in rows) else []
        doc.add(_table(rows, ablations + reference, "This run: ablations (the paper's Table 2)"))
    doc.add(
        Paragraph(f"Beside it, {PAPER_SETTING}.", note=True),
        tables.paper_table(TABLE2, TABLE2_TASKS, "Paper, Table 2 (ablations), accuracy %"),
    )


def _epoch_times(root: Path) -> dict[str, dict]:
    """method -> seconds of every finished epoch (over every seed's replica) and tokens per
    epoch (all students), from train/<method>/summary.json."""
    found: dict[str, dict] = {}
    for summary_path in sorted(root.glob("train/*/summary.json")) + sorted(
        root.glob("seed-*/train/*/summary.json")
    ):
        summary = read_json(summary_path)
        seconds = summary.get("epoch_seconds") or []
        if not seconds:
            continue
        tokens = sum(v for k, v in (summary.get("final") or {}).items() if k.startswith("tokens/"))
        epochs = max(1, summary.get("epochs_completed") or len(seconds))
        entry = found.setdefault(summary_path.parent.name, {"seconds": [], "tokens": []})
        entry["seconds"] += seconds
        entry["tokens"].append(tokens / epochs)
    return found


def timing_rows(entries: list[Entry]) -> list[list[str]]:
    body = []
    for e in entries:
        times = _epoch_times(e.root)
        separate = times.get(SEPARATE)
        for method, t in times.items():
            mean = statistics.fmean(t["seconds"])
            ratio = (
                f"{mean / statistics.fmean(separate['seconds']):.2f}"
                if separate
                else tables.MISSING
            )
            body.append(
                [
                    e.name,
                    method,
                    str(len(t["seconds"])),
                    f"{mean:.2f}",
                    f"{statistics.fmean(t['tokens']):,.0f}",
                    ratio,
                ]
            )
    return body


def _table3_section(doc: Document, entries: list[Entry]) -> None:
    body = timing_rows(entries)
    doc.add(Heading("Table 3: time per epoch, joint against separate"))
    if not body:
        doc.add(Paragraph("Not trained yet: no method recorded its epochs' time.", note=True))
    else:
        doc.add(
            Paragraph(
                f"Seconds per epoch of the optimizer steps (forward, backward, update; not "
                f"logging, checkpoints or evaluation), on the main process, mean over the epochs "
                f"(and seeds) each run finished. Joint: {JOINT}, whose routing gives each student "
                f"only its routed paths. Separate: {SEPARATE}, in which every student computes "
                "every answer-correct path with no routing and no peer teaching, the compute of "
                "training each student alone on all the paths. The two read different path files "
                "(the judge-kept paths against every answer-correct one), so tokens per epoch are "
                "shown beside the time. On a shared or busy machine the seconds are not a "
                "measurement to cite."
            ),
            Table(
                [
                    "entry",
                    "method",
                    "epochs timed",
                    "seconds / epoch",
                    "tokens / epoch (all students)",
                    f"÷ {SEPARATE}'s seconds / epoch",
                ],
                body,
                "This run: training time per epoch",
            ),
        )
    joint, separate = TABLE3["joint (QR-Distill)"], TABLE3["separate"]
    doc.add(
        Paragraph(
            f"Paper, Table 3 ({PAPER_SETTING}): {joint} (min:s) per epoch joint against "
            f"{separate} separate, a ratio of {_seconds(joint) / _seconds(separate):.2f}.",
            note=True,
        )
    )


def _seconds(text: str) -> int:
    minutes, seconds = text.split(":")
    return 60 * int(minutes) + int(seconds)


def _train_count(entry: Entry) -> str:
    manifest = entry.root / "data" / "manifest.json"
    return str(read_json(manifest)["counts"]["train"]) if manifest.exists() else tables.MISSING


def _sample_efficiency_section(doc: Document, entries: list[Entry]) -> None:
    pairs = [
        (part, full)
        for part in entries
        if not part.full
        for full in [next((f for f in entries if f.full and f.task == part.task), None)]
        if full is not None
    ]
    if not pairs:
        return
    doc.add(Heading("Sample efficiency: a share of the training data against all of it"))
    for part, full in pairs:
        rows = part.rows + full.rows
        doc.add(
            Paragraph(
                f"{part.name}: {100 * part.train_fraction:g} % of the training questions "
                f"({_train_count(part)}) against {full.name}: all of them ({_train_count(full)}); "
                "the same test questions (the split cuts test before train)."
            ),
            _table(
                rows,
                tables.ordered(r["method"] for r in rows),
                f"This run: {part.task}, accuracy %",
                average=None,
            ),
        )
    doc.add(
        Paragraph(f"Beside it, {PAPER_SETTING}.", note=True),
        tables.paper_table(
            SAMPLE_EFFICIENCY,
            SAMPLE_EFFICIENCY_SHARES,
            "Paper, sample efficiency on Date (share of the training data), accuracy %",
        ),
    )


def suite_document(run_dir: Path) -> Document:
    entries = load_entries(run_dir)
    doc = Document("QR-Distill suite report")
    doc.add(Paragraph(f"Suite run directory: {Path(run_dir).resolve()}"))
    for section in (
        _entries_section,
        _table1_section,
        _table2_section,
        _table3_section,
        _sample_efficiency_section,
    ):
        section(doc, entries)
    return doc


def build_suite_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write suite_report.md and suite_report.html into `out_dir` (default the suite's run
    directory); return the HTML's path."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = suite_document(run_dir)
    with atomic_open(out_dir / "suite_report.md") as handle:
        handle.write(to_markdown(doc))
    with atomic_open(out_dir / "suite_report.html") as handle:
        handle.write(to_html(doc))
    return out_dir / "suite_report.html"
