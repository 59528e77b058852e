"""The `qrdistill` command. Every subcommand is a thin layer over one library call."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qrdistill.errors import BudgetReached, QRDistillError, UsageError

console = Console()
# Errors are one line, never wrapped at the terminal's width (a log or a test reads them whole).
err_console = Console(stderr=True, soft_wrap=True)


STAGE_HELP = {
    "generate": "stage 1: teacher writes one reasoning path per style per question",
    "filter": "stage 2: keep paths with the right answer that the LLM judge finds sound",
    "train": "stages 3-4: train the students with routing and peer teaching (every method)",
    "evaluate": "evaluate every student, the zero-shot baselines and the methods",
}


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        help="YAML config (default: the embedded offline quickstart)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=2 (repeatable)",
    )
    parser.add_argument(
        "--run-dir", default=None, help="where the run's artifacts go (overrides run_dir)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="repeat training (and a sampling teacher) under N seeds, in RUN/seed-K/; the "
        "report gives mean and sd (overrides seeds)",
    )


def _load(args):
    from qrdistill.config import load_run_config

    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    if args.seeds is not None:
        overrides.append(f"seeds={args.seeds}")
    return load_run_config(args.config, overrides)


def cmd_run(args) -> int:
    from qrdistill.pipeline import STAGES, Pipeline

    cfg = _load(args)
    if args.config is None:
        console.print(
            "[bold]qrdistill quickstart[/bold]: offline, CPU, real packaged models "
            f"(run directory: {cfg.run_dir})"
        )
    if cfg.suite:
        from qrdistill.suite import Suite, dry_run

        suite = Suite(cfg, from_stage=args.from_stage)
        if args.dry_run:
            return dry_run(cfg, console)
        report = suite.run(STAGES)
        console.print(f"\n[bold green]Done.[/bold green] Joined report: {report}")
        return 0
    pipeline = Pipeline(cfg, from_stage=args.from_stage)
    if args.dry_run:
        from qrdistill.checks import check_run

        code = check_run(cfg, console)
        _print_estimate(cfg)
        return code
    report = pipeline.run(STAGES)
    console.print(f"\n[bold green]Done.[/bold green] Report: {report}")
    return 0


def _print_estimate(cfg, stages: tuple[str, ...] = ("generate", "filter")) -> None:
    from qrdistill.estimate import estimate_lines, estimates

    if cfg.suite:
        from qrdistill.suite import estimate_lines as suite_lines

        lines = suite_lines(cfg, stages)
    else:
        found = estimates(cfg, stages)
        lines = estimate_lines(found) if found else []
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def cmd_stage(args) -> int:
    from qrdistill.pipeline import Pipeline

    cfg = _load(args)
    if getattr(args, "dry_run", False):
        _print_estimate(cfg, (args.command,))
        return 0
    if getattr(args, "method", None):
        missing = [m for m in args.method if m not in cfg.methods]
        if missing:
            raise UsageError(
                f"--method {', '.join(missing)} is not in the config's methods "
                f"({', '.join(cfg.methods)})"
            )
        cfg = cfg.only_methods(args.method)
    if cfg.suite:
        from qrdistill.suite import Suite as runner
    else:
        runner = Pipeline
    pipeline = runner(
        cfg,
        from_stage=args.command if args.force else None,
        threshold=getattr(args, "threshold", None),
    )
    pipeline.run((args.command,))
    console.print(f"[bold green]{args.command} done[/bold green] ({cfg.run_dir})")
    return 0


def cmd_report(args) -> int:
    from qrdistill.reporting import build_report
    from qrdistill.reporting.suite import MANIFEST, build_suite_report

    run_dir = Path(args.run_dir)
    if run_dir.is_file() and run_dir.suffix in (".yaml", ".yml"):  # a config: its run directory
        from qrdistill.config import load_run_config

        run_dir = Path(load_run_config(run_dir).run_dir)
    if not run_dir.is_dir():
        raise UsageError(
            f"run directory {run_dir} "
            + ("is not a directory" if run_dir.exists() else "does not exist")
            + ": give the folder a run wrote (its run_dir) or the run's config (.yaml)"
        )
    out = Path(args.out) if args.out else None
    if (run_dir / MANIFEST).exists():
        console.print(f"Joined report: {build_suite_report(run_dir, out)}")
    else:
        console.print(f"Report: {build_report(run_dir, out)}")
    return 0


def cmd_export(args) -> int:
    if not args.merge:
        raise UsageError(
            f"nothing to export without --merge: each student's adapter is already in "
            f"{Path(args.run_dir) / 'train' / args.method / 'students'}/<student>/ (peft layout); "
            "add --merge to write standard HF folders with the adapter merged into the base"
        )
    from qrdistill.training.export import merge_run

    for path in merge_run(
        Path(args.run_dir),
        args.method,
        args.student,
        Path(args.out) if args.out else None,
        args.dtype,
    ):
        console.print(f"merged: {path}")
    return 0


def cmd_tasks(args) -> int:
    from qrdistill.data import available_counts
    from qrdistill.data.catalogue import HUB_SOURCES, source_block
    from qrdistill.tasks import get_task, list_tasks

    counts: dict[str, list[str]] = {}
    for row in available_counts():
        counts.setdefault(row["task"], []).append(
            f"{row['count']:,} {row['split']} ({row['source']})"
        )
    table = Table(title="Tasks")
    table.add_column("task")
    table.add_column("answer type")
    table.add_column("examples available offline")
    for name in list_tasks():
        offline = counts.get(
            name, ["none: hub or local file" + (" (below)" if name in HUB_SOURCES else "")]
        )
        table.add_row(name, get_task(name).answer_type, "; ".join(offline))
    console.print(table)
    for name, source in HUB_SOURCES.items():
        console.print(f"\n[bold]{name}[/bold] (data.task: {name}), online or from a warm HF cache:")
        console.print(source_block(source), markup=False, highlight=False, soft_wrap=True, end="")
    return 0


def cmd_data_prepare(args) -> int:
    from qrdistill.data import prepare_splits

    overrides = list(args.overrides)
    if args.task:
        overrides.append(f"data.task={args.task}")
    from qrdistill.config import load_run_config

    cfg = load_run_config(args.config, overrides)
    for split, path in prepare_splits(cfg.data, Path(args.out)).items():
        console.print(f"{split}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qrdistill", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="the whole pipeline: data, generate, filter, train, evaluate, report"
    )
    _add_config_args(run)
    run.add_argument(
        "--from",
        dest="from_stage",
        default=None,
        metavar="STAGE",
        help="re-run from this stage on (data, generate, filter, train, evaluate, report)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config, the models it names and the data, then stop",
    )
    run.set_defaults(func=cmd_run)

    for name, help_text in STAGE_HELP.items():
        stage = sub.add_parser(name, help=help_text)
        _add_config_args(stage)
        stage.add_argument(
            "--force", action="store_true", help="redo this stage even if up to date"
        )
        if name in ("generate", "filter"):
            stage.add_argument(
                "--dry-run",
                action="store_true",
                help="print the expected requests, tokens and USD of this stage, then stop",
            )
        if name == "filter":
            stage.add_argument(
                "--threshold",
                type=float,
                default=None,
                help="judge score threshold; re-filters from stored scores, no new calls",
            )
        if name in ("train", "evaluate"):
            stage.add_argument(
                "--method",
                action="append",
                default=None,
                help="only this method (repeatable); default: every method in the config",
            )
        stage.set_defaults(func=cmd_stage)

    report = sub.add_parser(
        "report",
        help="render the Markdown/HTML report of a run directory (a suite's: the joined report)",
    )
    report.add_argument("run_dir", help="a run directory, or a config (its run_dir)")
    report.add_argument(
        "--out",
        default=None,
        help="output folder (default RUN_DIR/report; a suite's joined report: RUN_DIR)",
    )
    report.set_defaults(func=cmd_report)

    export = sub.add_parser(
        "export",
        help="write a method's trained students as standard HF folders (adapter merged into the base)",
    )
    export.add_argument("run_dir")
    export.add_argument("--method", required=True, help="the trained method, e.g. qr_distill")
    export.add_argument("--student", default=None, help="only this student (default: all)")
    export.add_argument(
        "--merge", action="store_true", help="merge the LoRA adapter into a fresh copy of the base"
    )
    export.add_argument(
        "--out", default=None, help="folder for the merged students (default RUN/merged/METHOD)"
    )
    export.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "bf16", "fp16", "fp32"),
        help="dtype the base is reloaded and merged in; auto: as trained, bf16 for a 4-bit base "
        "(never merged into quantized weights)",
    )
    export.set_defaults(func=cmd_export)

    tasks = sub.add_parser("tasks", help="list tasks and how many examples are available offline")
    tasks.set_defaults(func=cmd_tasks)

    data = sub.add_parser("data", help="data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    prepare = data_sub.add_parser("prepare", help="write train/dev/test JSONL for a task")
    prepare.add_argument("--task", default=None)
    prepare.add_argument("--out", required=True)
    prepare.add_argument("--config", default=None)
    prepare.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE"
    )
    prepare.set_defaults(func=cmd_data_prepare)
    return parser


def continue_command(argv: list[str]) -> str:
    """The command that continues an interrupted or budget-stopped one: the same, without
    `--from`/`--force` (the pipeline forgets forced stages as it starts, so a plain rerun redoes
    what was forced and not yet finished, and keeps what was)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--from":
            skip = True
        elif arg != "--force" and not arg.startswith("--from="):
            kept.append(arg)
    return shlex.join(["qrdistill", *kept])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # Our own messages at INFO; the libraries' only when something is wrong (or with -v).
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("qrdistill").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # peft calls a transformers method deprecated in v5; the warning is not the user's to act on.
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )
    try:
        return args.func(args)
    except BudgetReached as err:
        _error(err, "budget reached")
        err_console.print(f"to continue: {continue_command(argv)}", highlight=False)
        return 3
    except QRDistillError as err:  # every user-facing error (qrdistill.errors)
        _error(err)
        return 2
    except (
        OSError
    ) as err:  # a folder where a file belongs, a file where a folder belongs, no permission
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        _error(f"{where}{err.strerror or err}")
        return 2
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: everything finished is kept; to continue: " + continue_command(argv),
            highlight=False,
        )
        return 130


def _error(err, prefix: str = "error") -> None:
    """One line on stderr, whatever the message holds."""
    from rich.markup import escape

    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    err_console.print(f"[bold red]{prefix}:[/bold red] {escape(text)}", highlight=False)


if __name__ == "__main__":
    sys.exit(main())
