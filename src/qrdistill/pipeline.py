"""`qrdistill run`: data -> generate -> filter -> train (each method) -> evaluate -> report.

Each stage reads the artifacts of the one before from the run directory and writes its own
(docs/ARCHITECTURE.md). A stage that finished is recorded with a fingerprint of its config and
of its inputs; a rerun skips it while the fingerprint still matches, and redoes it (and, through
the chained fingerprints, everything after it) when something it depends on changed. Within a
stage, work is resumable on its own terms: generation and judging cache every finished request,
training resumes from its last checkpoint, evaluation skips finished models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from qrdistill.config import RunConfig
from qrdistill.methods import method_train_config
from qrdistill.utils.config import dump_yaml
from qrdistill.utils.io import atomic_open, read_json, write_json

log = logging.getLogger(__name__)
console = Console(stderr=True)

STAGES = ("data", "generate", "filter", "train", "evaluate", "report")


class PipelineError(RuntimeError):
    """The run cannot go on as asked; the message says what to do."""


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def generate(self) -> Path:
        return self.root / "generate"

    @property
    def paths(self) -> Path:
        return self.generate / "paths.jsonl"

    @property
    def filter(self) -> Path:
        return self.root / "filter"

    @property
    def kept(self) -> Path:
        return self.filter / "kept.jsonl"

    def train(self, method: str) -> Path:
        return self.root / "train" / method

    @property
    def evaluate(self) -> Path:
        return self.root / "evaluate"

    @property
    def report(self) -> Path:
        return self.root / "report"


def _fingerprint(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _marker(folder: Path) -> Path:
    return folder / ".stage.json"


def _is_done(folder: Path, fingerprint: str) -> bool:
    marker = _marker(folder)
    return marker.exists() and read_json(marker).get("fingerprint") == fingerprint


def _mark_done(folder: Path, fingerprint: str) -> None:
    write_json(_marker(folder), {"fingerprint": fingerprint})


class Pipeline:
    def __init__(self, cfg: RunConfig, *, from_stage: str | None = None, threshold: float | None = None):
        if from_stage is not None and from_stage not in STAGES:
            raise ValueError(f"--from {from_stage!r}: choose one of {', '.join(STAGES)}")
        self.cfg = cfg
        self.layout = RunLayout(Path(cfg.run_dir))
        self.force_from = STAGES.index(from_stage) if from_stage else len(STAGES)
        self.threshold = threshold
        self.methods = list(cfg.methods)
        self._prints: dict[str, str] = {}
        # Under `accelerate launch` every process runs this; only training is spread over them,
        # and only the main process writes the run's bookkeeping.
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.is_main = int(os.environ.get("RANK", "0")) == 0

    # -- bookkeeping -------------------------------------------------------------------------
    def _should_skip(self, stage: str, folder: Path, fingerprint: str) -> bool:
        forced = STAGES.index(stage) >= self.force_from
        if not forced and _is_done(folder, fingerprint):
            if self.is_main:
                console.print(f"[dim]- {stage}: up to date ({folder}), skipped[/dim]")
            return True
        if self.world_size > 1 and stage != "train":
            raise PipelineError(
                f"stage '{stage}' is not up to date, and under several processes only training runs: "
                f"run `qrdistill {'filter' if STAGES.index(stage) <= 2 else stage} CONFIG` on one process "
                "first, then `accelerate launch -m qrdistill train CONFIG`")
        return False

    def _mark_done(self, folder: Path, fingerprint: str) -> None:
        if self.is_main:
            _mark_done(folder, fingerprint)

    def _header(self, stage: str, what: str) -> None:
        console.rule(f"[bold]{stage}[/bold]: {what}")

    # -- stages ------------------------------------------------------------------------------
    def run_data(self) -> None:
        from qrdistill.data import prepare_splits

        fp = self._prints["data"] = _fingerprint(self.cfg.data.model_dump(mode="json"), self.cfg.seed)
        if self._should_skip("data", self.layout.data, fp):
            return
        self._header("data", f"task {self.cfg.data.task}")
        paths = prepare_splits(self.cfg.data, self.layout.data)
        for split, path in paths.items():
            console.print(f"  {split}: {sum(1 for _ in open(path, encoding='utf-8'))} questions -> {path}")
        self._mark_done(self.layout.data, fp)

    def run_generate(self) -> None:
        from qrdistill.teacher import generate_paths

        fp = self._prints["generate"] = _fingerprint(
            self._prints["data"], self.cfg.generate.model_dump(mode="json"))
        if self._should_skip("generate", self.layout.generate, fp):
            return
        self._header("generate", "teacher reasoning paths, one per style")
        generate_paths(self.cfg.generate, self.layout.data / "train.jsonl", self.layout.generate)
        self._mark_done(self.layout.generate, fp)

    def run_filter(self) -> None:
        from qrdistill.quality import filter_paths, funnel_table

        fp = self._prints["filter"] = _fingerprint(
            self._prints["generate"], self.cfg.filter.model_dump(mode="json"), self.threshold)
        if self._should_skip("filter", self.layout.filter, fp):
            return
        self._header("filter", "answer check and LLM judge")
        filter_paths(self.cfg.filter, self.layout.paths, self.layout.filter, threshold=self.threshold)
        console.print(funnel_table(read_json(self.layout.filter / "funnel.json")))
        self._mark_done(self.layout.filter, fp)

    def run_train(self) -> None:
        from qrdistill.training import train

        for method in self.methods:
            train_cfg, filtered = method_train_config(self.cfg, method)
            upstream = self._prints["filter"] if filtered else self._prints["generate"]
            fp = self._prints[f"train:{method}"] = _fingerprint(upstream, train_cfg.model_dump(mode="json"), filtered)
            out = self.layout.train(method)
            if self._should_skip("train", out, fp):
                continue
            self._header("train", f"method {method}")
            if (out / ".stage.json").exists():  # its config changed since it finished: start over
                if self.world_size > 1:
                    raise PipelineError(f"{out} was trained with another config; remove it, or retrain "
                                        "it on one process, before training it under several processes")
                shutil.rmtree(out)
            train(train_cfg, self.layout.kept if filtered else self.layout.paths, out,
                  resume=(out / "checkpoints").exists())
            self._mark_done(out, fp)

    def eval_models(self):
        from qrdistill.evaluation import EvalModel

        models = []
        if self.cfg.zero_shot:
            models += [EvalModel(method="zero_shot", student=s.name, model=s.model)
                       for s in self.cfg.train.students]
        for method in self.methods:
            train_cfg, _ = method_train_config(self.cfg, method)
            models += [EvalModel(method=method, student=s.name,
                                 model=str(self.layout.train(method) / "students" / s.name),
                                 fingerprint=self._prints.get(f"train:{method}", ""))
                       for s in train_cfg.students]
        return models

    def run_evaluate(self) -> None:
        from qrdistill.evaluation import evaluate

        trained = [self._prints[k] for k in sorted(self._prints) if k.startswith("train:")]
        fp = self._prints["evaluate"] = _fingerprint(
            self._prints["data"], trained, self.cfg.evaluate.model_dump(mode="json"), self.cfg.zero_shot)
        if self._should_skip("evaluate", self.layout.evaluate, fp):
            return
        self._header("evaluate", "each student alone on the test split")
        evaluate(self.cfg.evaluate, self.layout.data / "test.jsonl", self.eval_models(), self.layout.evaluate)
        self._mark_done(self.layout.evaluate, fp)

    def run_report(self) -> Path:
        from qrdistill.reporting import build_report

        self._header("report", str(self.layout.report))
        return build_report(self.layout.root, self.layout.report)

    # -- the whole run -------------------------------------------------------------------------
    def run(self, stages: tuple[str, ...] = STAGES) -> Path | None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            with atomic_open(self.layout.root / "config.yaml") as handle:
                handle.write(dump_yaml(self.cfg))
        report = None
        # Earlier stages still run (and are skipped when up to date) so that fingerprints chain.
        last = max(STAGES.index(s) for s in stages)
        for stage in STAGES[: last + 1]:
            result = getattr(self, f"run_{stage}")()
            if stage == "report":
                report = result
        return report
