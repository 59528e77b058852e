"""A suite: several tasks from one config, each a run of its own, and one report that joins them.

A config with a `suite` section (qrdistill.config.SuiteTask) names its tasks; the students,
methods, seeds, teacher and judge are shared. Each entry runs as an ordinary
`qrdistill.pipeline.Pipeline` in RUN/<name>/, with that run's own stage markers, caches and
report, so an interrupted suite continues where it stopped: the tasks that finished are skipped
stage by stage, exactly as a single run's stages are. RUN/suite.json lists the entries (what
the joined report reads) and RUN/suite_report.{html,md} joins them (qrdistill.reporting.suite).

```
RUN/
  config.yaml                 the suite's config
  suite.json                  entries: name -> folder, task, train_fraction, train_size
  <name>/                     one ordinary run directory per entry (docs/ARCHITECTURE.md)
  suite_report.html, .md      the paper's tables over every entry
```
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from qrdistill.config import RunConfig
from qrdistill.errors import QRDistillError
from qrdistill.pipeline import Pipeline
from qrdistill.reporting.suite import MANIFEST, build_suite_report
from qrdistill.utils.config import dump_yaml
from qrdistill.utils.io import atomic_open, write_json
from qrdistill.utils.lock import RunLock

console = Console(stderr=True)


def suite_manifest(cfg: RunConfig) -> dict:
    """What the joined report needs to know of each entry, without reading the config again."""
    return {
        "entries": {
            name: {
                "folder": name,
                "task": task.data.task,
                "train_fraction": task.data.train_fraction,
                "train_size": task.data.train_size,
            }
            for name, task in cfg.suite_configs().items()
        }
    }


class Suite:
    """Every entry of a suite through the given stages, one Pipeline each, then the joined
    report. `from_stage` and `threshold` apply to every entry, as to a single run."""

    def __init__(self, cfg: RunConfig, *, from_stage: str | None = None, threshold=None):
        self.cfg = cfg
        self.root = Path(cfg.run_dir)
        # Made now, so that a bad --from or --threshold is an error before any task runs.
        self.pipelines = {
            name: Pipeline(task_cfg, from_stage=from_stage, threshold=threshold)
            for name, task_cfg in cfg.suite_configs().items()
        }

    def run(self, stages: tuple[str, ...]) -> Path | None:
        # Under `accelerate launch` every process runs every entry's training; only the main
        # one holds the suite's lock and writes its files (as Pipeline does for one run).
        if not next(iter(self.pipelines.values())).is_main:
            return self._run(stages)
        self.root.mkdir(parents=True, exist_ok=True)
        with RunLock(self.root):
            with atomic_open(self.root / "config.yaml") as handle:
                handle.write(dump_yaml(self.cfg))
            write_json(self.root / MANIFEST, suite_manifest(self.cfg))
            return self._run(stages)

    def _run(self, stages: tuple[str, ...]) -> Path | None:
        for k, (name, pipeline) in enumerate(self.pipelines.items(), 1):
            console.rule(
                f"[bold]task {k} of {len(self.pipelines)}: {name}[/bold] ({pipeline.layout.root})"
            )
            pipeline.run(stages)
        if "report" not in stages or not next(iter(self.pipelines.values())).is_main:
            return None
        return build_suite_report(self.root)


# --------------------------------------------------------------------------- the dry run
def dry_run(cfg: RunConfig, out: Console) -> int:
    """Each entry's check (models, backends, data), then the spend estimates per entry and in
    total; 0 when every check passed."""
    from qrdistill.checks import check_run

    code = 0
    for name, task_cfg in cfg.suite_configs().items():
        out.rule(f"[bold]{name}[/bold] (task {task_cfg.data.task})")
        code = max(code, check_run(task_cfg, out))
    out.rule("[bold]spend[/bold]")
    for line in estimate_lines(cfg):
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    return code


def estimate_lines(cfg: RunConfig, stages: tuple[str, ...] = ("generate", "filter")) -> list[str]:
    """Each entry's estimate (qrdistill.estimate), then the totals over the entries whose data
    could be read here (a hub source offline cannot be: it is named instead)."""
    from qrdistill import estimate

    found: dict[str, list] = {}
    missing: dict[str, str] = {}
    lines = []
    for name, task_cfg in cfg.suite_configs().items():
        try:
            found[name] = estimate.estimates(task_cfg, stages)
        except QRDistillError as err:
            missing[name] = " ".join(str(err).split())
            continue
        lines += [f"[{name}] {line}" for line in estimate.estimate_lines(found[name])]
    return lines + total_lines(found, missing)


def total_lines(found: dict[str, list], missing: dict[str, str]) -> list[str]:
    """Per entry and in total: requests still to run, input and output tokens, USD, per stage."""
    lines = ["Estimated spend per task and in total (requests still to run; nothing asked yet):"]
    totals: dict[str, list] = {}
    for name, estimates in found.items():
        for e in estimates:
            totals.setdefault(e.stage, []).append(e)
        lines.append(f"  {name}: " + "; ".join(_stage_cell([e]) for e in estimates))
    lines += [
        f"  {name}: no estimate, its data cannot be read here: {why}"
        for name, why in missing.items()
    ]
    if totals:
        where = f"{len(found)} of {len(found) + len(missing)} tasks"
        lines.append(f"  total ({where}): " + "; ".join(_stage_cell(es) for es in totals.values()))
    if missing:
        lines.append(
            f"  the total leaves out {', '.join(missing)}: their data could not be read here "
            "(a hub source needs the network or a warm HF cache; the estimate needs the prompts)"
        )
    return lines


def _stage_cell(estimates: list) -> str:
    """One stage summed over entries: e.g. 'generate 1,200 requests, input 300,000 tokens, ...'."""
    first = estimates[0]
    usd = [e.usd(e.expected_output_tokens) for e in estimates]
    usd_max = [e.usd(e.max_output_tokens) for e in estimates]
    money = (
        f", USD ${sum(usd):,.2f} expected, ${sum(usd_max):,.2f} at most"
        if None not in usd
        else ", USD: no prices set"
    )
    return (
        f"{first.stage} ({first.backend.model}) {sum(e.requests for e in estimates):,} requests, "
        f"input {sum(e.input_tokens for e in estimates):,} tokens, output "
        f"{sum(e.expected_output_tokens for e in estimates):,} expected "
        f"({sum(e.max_output_tokens for e in estimates):,} at most){money}"
    )
