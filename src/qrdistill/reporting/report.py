"""`build_report(run_dir)`: Markdown + self-contained HTML + PNGs from whatever a run produced.

Each section reads one artifact of the run directory (docs/ARCHITECTURE.md); a stage that has not
run yet leaves its section saying "not run", so a report can be built at any point of a run.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import yaml

from qrdistill.errors import ConfigError, DataError
from qrdistill.reporting import plots, tables
from qrdistill.reporting.config import ReportConfig
from qrdistill.reporting.document import (
    Code,
    Document,
    Heading,
    Image,
    Paragraph,
    to_html,
    to_markdown,
)
from qrdistill.reporting.paper import (
    FULL_METHOD,
    TABLE1,
    TABLE1_TASKS,
    TABLE2,
    TABLE2_TASKS,
    is_ablation,
)
from qrdistill.reporting.spend import spend_section
from qrdistill.utils.config import validate_config
from qrdistill.utils.io import atomic_open, read_json, read_jsonl

VERSIONED_PACKAGES = ("torch", "transformers", "peft", "accelerate")


def _not_run(doc: Document, what: str, path: Path, run_dir: Path) -> None:
    if path.exists():  # there but damaged: `_read` has named it already
        return
    doc.add(Paragraph(f"Not run: {what} ({path.relative_to(run_dir)} not found).", note=True))


def _read(doc: Document, path: Path, reader):
    """The artifact, or None when it is missing or damaged. A damaged one (e.g. a line cut short
    by an interrupted run) is named in the report instead of stopping it."""
    if not path.exists():
        return None
    try:
        return reader(path)
    except DataError as err:
        doc.add(Paragraph(f"Could not read {path.name}: {err}", note=True))
        return None


def _accuracy_section(doc: Document, run_dir: Path, out_dir: Path, cfg: ReportConfig) -> None:
    doc.add(Heading("Accuracy on the test split"))
    path = run_dir / "evaluate" / "summary.json"
    summary = _read(doc, path, read_json)
    if summary is None:
        _not_run(doc, "evaluation", path, run_dir)
    else:
        singles = [r for r in summary if not r["student"].startswith("ensemble:")]
        ensembles = [r for r in summary if r["student"].startswith("ensemble:")]
        methods = tables.ordered(r["method"] for r in singles)
        main = [m for m in methods if not is_ablation(m)]
        ablations = [m for m in methods if is_ablation(m)]
        doc.add(
            Paragraph(
                "Accuracy in %, each student answering alone (greedy decoding). "
                "'avg' is the unweighted mean over tasks, as in the paper."
            )
        )
        if main:
            doc.add(
                tables.accuracy_table(
                    singles, main, "Methods and baselines (the shape of the paper's Table 1)"
                )
            )
        if ablations:
            reference = [FULL_METHOD] if FULL_METHOD in methods else []
            doc.add(
                tables.accuracy_table(
                    singles, ablations + reference, "Ablations (the shape of the paper's Table 2)"
                )
            )
        if ensembles:
            doc.add(
                tables.accuracy_table(
                    ensembles,
                    tables.ordered(r["method"] for r in ensembles),
                    "Extra: ensembles across each method's students (not in the paper)",
                )
            )
        doc.add(
            Paragraph(
                "The last column scores the same answers under lm-evaluation-harness's "
                "conventions (GSM8K strict-match and flexible-extract, exact match of the last "
                "boxed answer for MATH, the 'best answer is X' letter for multiple choice): strict "
                "string matches, to set beside published lm-eval figures; ours compares answers "
                "symbolically. For BoolQ, PIQA and ARC it also gives lm-eval's acc (acc-norm): "
                "whether the model's likeliest option is right, from its log-likelihoods with no "
                "generation (an ensemble has none) (docs/METHOD.md, 'Evaluation')."
            )
        )
        doc.add(tables.interval_table(summary))
        if singles:
            doc.add(
                Image(
                    plots.accuracy_plot(singles, out_dir / "accuracy.png"),
                    "Accuracy per method and student",
                )
            )
    if cfg.include_paper_reference:
        doc.add(
            Heading("For reference: the paper's numbers", 3),
            Paragraph(
                "Reported by the paper with Mistral-7B-Instruct and Gemma-7B-it students and a "
                "Gemini-1.5-Pro teacher; not comparable in absolute terms with a small local run.",
                note=True,
            ),
            tables.paper_table(TABLE1, TABLE1_TASKS, "Paper, Table 1, accuracy %"),
            tables.paper_table(TABLE2, TABLE2_TASKS, "Paper, Table 2 (ablations), accuracy %"),
        )


def _paired_section(doc: Document, run_dir: Path, out_dir: Path) -> None:
    """Methods compared question by question (evaluate/paired.json). Kept apart from the accuracy
    tables: their Wilson intervals say how sure each accuracy is, not which method is better."""
    path = run_dir / "evaluate" / "paired.json"
    rows = _read(doc, path, read_json)
    if not rows:  # not evaluated yet (the accuracy section says so), or no qr_distill to compare
        return
    doc.add(
        Heading("Paired comparison with QR-Distill", 3),
        Paragraph(
            "Every method answered the same test questions, so each is compared with qr_distill "
            "question by question: the difference in accuracy, its 95% interval from 10,000 "
            "paired bootstrap resamples of the questions, and McNemar's exact test on the "
            "questions exactly one of the two got right. The table makes many comparisons, so "
            "some small p is expected by chance alone: the last column adjusts the p-values "
            "by Holm's method over every row, and a Holm-adjusted p below 0.05 marks a "
            "difference beyond chance with a family-wise error rate of 5%. Overlapping Wilson "
            "intervals above do not rule a difference out."
        ),
        tables.paired_table(rows),
    )


def _seeds_section(doc: Document, run_dir: Path, out_dir: Path) -> None:
    """A run repeated under several seeds (RUN/seeds.json): every figure as mean ± sd."""
    seeds = _read(doc, run_dir / "seeds.json", read_json)
    if seeds is None:
        return
    shared = "shared by all seeds" if seeds["teacher_shared"] else "sampled anew under each seed"
    doc.add(
        Heading(f"Accuracy over {seeds['seeds']} seeds"),
        Paragraph(
            f"Training was repeated under {seeds['seeds']} seeds ({', '.join(seeds['replicas'])}); "
            f"the data split is shared, the teacher's paths are {shared}. Accuracy in %, each "
            "student answering alone; the paired differences are to qr_distill on the same "
            "questions (evaluate/paired.json of each seed). The sections after this one show "
            f"{seeds['replicas'][0]} alone."
        ),
        tables.seeds_table(
            [r for r in seeds["accuracy"] if not r["student"].startswith("ensemble:")],
            "accuracy %",
        ),
    )
    if seeds["paired"]:
        doc.add(tables.seeds_table(seeds["paired"], "difference to qr_distill, points", True))


def _funnel_section(doc: Document, run_dir: Path, out_dir: Path) -> None:
    doc.add(Heading("Quality filter"))
    path = run_dir / "filter" / "funnel.json"
    funnel = _read(doc, path, read_json)
    if funnel is None:
        _not_run(doc, "quality filtering", path, run_dir)
        return
    # funnel.json holds {"per_style": {...}, "total": {...}, settings}; a bare {style: counts} works too.
    per_style = funnel.get("per_style") or {
        k: v for k, v in funnel.items() if isinstance(v, dict) and "generated" in v and k != "total"
    }
    if not per_style:
        doc.add(Paragraph("The funnel holds no paths.", note=True))
        return
    settings = [
        f"{key} = {funnel[key]}"
        for key in ("threshold", "answer_check", "judge_enabled", "on_unparseable")
        if key in funnel
    ]
    if settings:
        doc.add(Paragraph("Filter settings: " + ", ".join(settings) + "."))
    doc.add(
        tables.funnel_table(per_style, funnel.get("total")),
        Image(
            plots.funnel_plot(per_style, out_dir / "funnel.png"), "Quality-filter funnel per style"
        ),
    )
    for line in _overlength_lines(run_dir):
        doc.add(Paragraph(line, note=True))


def _overlength_lines(run_dir: Path) -> list[str]:
    """The funnel's last step, per trained method: the kept paths too long for
    `train.max_length` (dropped, or their prompts cut from the left; never cut silently), from
    train/<method>/summary.json."""
    lines = []
    for method_dir in _method_dirs(run_dir):
        summary = method_dir / "summary.json"
        counts = read_json(summary).get("counts", {}) if summary.exists() else {}
        dropped = counts.get("items_dropped", 0)
        truncated = sum(counts.get("truncated_prompt", {}).values())
        if not dropped and not truncated:
            continue
        max_length = read_json(summary).get("config", {}).get("max_length")
        per_style = ", ".join(
            f"{style} {n}" for style, n in counts.get("items_dropped_per_style", {}).items()
        )
        lines.append(
            f"Method {method_dir.name}: {dropped} of {dropped + counts.get('items', 0)} training "
            f"items longer than train.max_length = {max_length} tokens were dropped"
            + (f" ({per_style})" if per_style else "")
            + f"; {truncated} prompt(s) were cut from the left to fit (summed over students)."
        )
    return lines


def _method_dirs(run_dir: Path) -> list[Path]:
    train = run_dir / "train"
    return sorted(p for p in train.iterdir() if p.is_dir()) if train.is_dir() else []


def _routing_section(doc: Document, run_dir: Path, out_dir: Path) -> None:
    doc.add(Heading("Routing: which student learns from which style"))
    found = False
    for method_dir in _method_dirs(run_dir):
        rows = _read(doc, method_dir / "routing.jsonl", read_jsonl)
        # Every path to every student (no routing, the SFT baselines): nothing to show.
        if not rows or all(r.get("rate") == 1.0 for r in rows):
            continue
        found = True
        # A resumed epoch may be logged twice; its last record wins.
        latest = {(r["epoch"], r["style"], r["student"]): r for r in rows}
        rows = list(latest.values())
        last = max(r["epoch"] for r in rows)
        last_rows = [r for r in rows if r["epoch"] == last]
        doc.add(
            Heading(f"Method {method_dir.name}", 3),
            tables.routing_table(last_rows, last),
            Paragraph(tables.routing_verdict(last_rows)),
            Image(
                plots.routing_plot(rows, out_dir / f"routing_{method_dir.name}.png"),
                f"Routing rates of {method_dir.name}",
            ),
        )
    if not found:
        _not_run(
            doc, "training with routing", run_dir / "train" / "<method>" / "routing.jsonl", run_dir
        )


def _training_section(doc: Document, run_dir: Path, out_dir: Path) -> None:
    doc.add(Heading("Training curves"))
    found = False
    for method_dir in _method_dirs(run_dir):
        metrics = _read(doc, method_dir / "metrics.jsonl", read_jsonl)
        if not metrics or not plots.loss_keys(metrics):
            continue
        found = True
        doc.add(
            Heading(f"Method {method_dir.name}", 3),
            Paragraph(
                f"{len(metrics)} logged steps; curves: {', '.join(plots.loss_keys(metrics))}."
            ),
            Image(
                plots.training_plot(
                    metrics, method_dir.name, out_dir / f"training_{method_dir.name}.png"
                ),
                f"Training loss of {method_dir.name}",
            ),
        )
    if not found:
        _not_run(doc, "training", run_dir / "train" / "<method>" / "metrics.jsonl", run_dir)


def _versions() -> list[list[str]]:
    rows = [["python", platform.python_version()]]
    for package in VERSIONED_PACKAGES:
        try:
            rows.append([package, importlib.metadata.version(package)])
        except importlib.metadata.PackageNotFoundError:
            rows.append([package, "not installed"])
    return rows


def _config_section(doc: Document, run_dir: Path, config_text: str | None) -> None:
    doc.add(Heading("Run configuration and versions"))
    if config_text is None:
        _not_run(doc, "the pipeline", run_dir / "config.yaml", run_dir)
    else:
        doc.add(Code(config_text, "yaml"))
    doc.add(
        tables.Table(
            ["package", "version"],
            _versions(),
            "Versions of the environment that built this report",
        )
    )


def _report_config(config_text: str | None, config_path: Path) -> ReportConfig:
    """The run's own `report` section, else the defaults."""
    try:
        data = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{config_path}:{mark.line + 1}" if mark is not None else str(config_path)
        raise ConfigError(
            f"{where}: not valid YAML ({getattr(err, 'problem', None) or 'parse error'}); "
            "fix or remove it (the report reads its `report` section)"
        ) from None
    section = data.get("report") if isinstance(data, dict) else None
    return validate_config(ReportConfig, section or {}, "config.yaml: report")


def _guarded(section, doc: Document, run_dir: Path, out_dir: Path, *args) -> None:
    """Render one section; an artifact of an unexpected shape (a hand-edited or foreign file) is
    named in the report, like a damaged one, instead of stopping it."""
    try:
        if section is _config_section:
            section(doc, run_dir, *args)
        else:
            section(doc, run_dir, out_dir, *args)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
        doc.add(
            Paragraph(
                f"Could not render this section: an artifact has an unexpected shape "
                f"({type(err).__name__}: {str(err)[:120]}); rerun the stage that wrote it.",
                note=True,
            )
        )


def build_report(
    run_dir: Path, out_dir: Path | None = None, *, cfg: ReportConfig | None = None
) -> Path:
    """Write report.md, report.html and the PNGs to `out_dir` (default RUN/report); return report.html.

    `cfg` defaults to the `report` section of RUN/config.yaml.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.yaml"
    config_text = None
    if config_path.exists():
        try:
            config_text = config_path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{config_path}: not UTF-8 text; fix or remove it") from None
        except IsADirectoryError:
            raise ConfigError(f"{config_path}: is a directory, not the run's config") from None
    cfg = cfg or _report_config(config_text, config_path)

    doc = Document(cfg.title)
    doc.add(Paragraph(f"Run directory: {run_dir.resolve()}"))
    # A run repeated under several seeds: the summary over seeds, then the first seed's details
    # (its teacher's paths are in the run directory itself when the seeds share them).
    seeds = run_dir / "seeds.json"
    first = run_dir / "seed-0"
    detail = first if seeds.exists() else run_dir
    teacher = run_dir if (run_dir / "filter").exists() or not seeds.exists() else first
    for section, where, args in (
        (_seeds_section, run_dir, ()),
        (_accuracy_section, detail, (cfg,)),
        (_paired_section, detail, ()),
        (_funnel_section, teacher, ()),
        (spend_section, teacher, ()),
        (_routing_section, detail, ()),
        (_training_section, detail, ()),
        (_config_section, run_dir, (config_text,)),
    ):
        _guarded(section, doc, where, out_dir, *args)

    with atomic_open(out_dir / "report.md") as handle:
        handle.write(to_markdown(doc))
    with atomic_open(out_dir / "report.html") as handle:
        handle.write(to_html(doc))
    return out_dir / "report.html"
