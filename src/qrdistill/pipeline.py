"""`qrdistill run`: data -> generate -> filter -> train (each method) -> evaluate -> report.

Each stage reads the artifacts of the one before from the run directory and writes its own
(docs/ARCHITECTURE.md). A stage that finished is recorded with a fingerprint of its config and
of its inputs, and with the size and sha256 of each output it wrote; a rerun skips it while the
fingerprint still matches and its outputs are still there unchanged, and redoes it (and, through
the chained fingerprints, everything after it) when something it depends on changed. One process
at a time writes to a run directory (a lock file names the holder; see qrdistill.utils.lock). Within a
stage, work is resumable on its own terms: generation and judging cache every finished request,
training resumes from its last checkpoint (Ctrl-C writes one at the step it stops after),
evaluation skips finished models and keeps a model's answers batch by batch.

With `seeds: N` (N > 1) the run is repeated under N seeds (RunConfig.replica), each a replica in
RUN/seed-K/ with its own train/ and evaluate/. The data split is shared (RUN/data/), and so are
the teacher's paths and their filtering (RUN/generate/, RUN/filter/) unless the teacher samples
(temperature > 0), in which case each replica asks it with its own seed, in RUN/seed-K/. The
untrained students answer once, in seed-0; later replicas reuse those answers. Each replica
resumes on its own terms as above; RUN/seeds.json gives the mean and sd over the seeds of every
accuracy and paired difference, and RUN/report reports them.
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
from qrdistill.errors import DataError, PipelineError
from qrdistill.utils.config import dump_yaml
from qrdistill.utils.io import atomic_open, read_json, write_json
from qrdistill.utils.lock import RunLock

log = logging.getLogger(__name__)
console = Console(stderr=True)

STAGES = ("data", "generate", "filter", "train", "evaluate", "report")


@dataclass(frozen=True)
class RunLayout:
    root: Path
    replica: str | None = None  # "seed-K" in a run repeated under several seeds
    teacher_shared: bool = True  # the replicas share the teacher's paths and their filtering

    @property
    def base(self) -> Path:
        """Where this replica's own stages (train, evaluate) and config go."""
        return self.root / self.replica if self.replica else self.root

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def generate(self) -> Path:
        return (self.root if self.teacher_shared else self.base) / "generate"

    @property
    def paths(self) -> Path:
        return self.generate / "paths.jsonl"

    @property
    def filter(self) -> Path:
        return (self.root if self.teacher_shared else self.base) / "filter"

    @property
    def kept(self) -> Path:
        return self.filter / "kept.jsonl"

    def train(self, method: str) -> Path:
        return self.base / "train" / method

    @property
    def evaluate(self) -> Path:
        return self.base / "evaluate"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds.json"

    @property
    def report(self) -> Path:
        return self.root / "report"


def _fingerprint(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _marker(folder: Path) -> Path:
    return folder / ".stage.json"


# Files above this size are checked by size only (hashing a multi-GB model on every rerun would
# cost more than it protects); smaller ones by size and sha256.
HASH_LIMIT_BYTES = 256 * 2**20

# What each stage writes, as globs under its folder: the marker records each file's size and hash.
OUTPUTS = {
    "data": ("*.jsonl",),
    "generate": ("paths.jsonl", "usage.json", "revthink.jsonl"),
    "filter": ("judged.jsonl", "kept.jsonl", "funnel.json", "usage.json"),
    "train": ("summary.json", "metrics.jsonl", "students/**/*"),
    "evaluate": ("predictions.jsonl", "summary.json", "paired.json"),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: Path) -> dict:
    size = path.stat().st_size
    return {"size": size, "sha256": _sha256(path) if size <= HASH_LIMIT_BYTES else None}


def _outputs(folder: Path, stage: str) -> dict[str, dict]:
    files = sorted({p for pattern in OUTPUTS[stage] for p in folder.glob(pattern) if p.is_file()})
    return {str(p.relative_to(folder)): _describe(p) for p in files}


def _why_not_done(folder: Path, fingerprint: str) -> str | None:
    """None when the stage in `folder` finished with this fingerprint and every output its marker
    recorded is there with the same size (and sha256); otherwise the reason, for the console."""
    marker = _marker(folder)
    if not marker.exists():
        return "not run yet"
    try:
        recorded = read_json(marker)
    except DataError:
        return "its marker is damaged"
    if not isinstance(recorded, dict) or recorded.get("fingerprint") != fingerprint:
        return "its config or inputs changed"
    outputs = recorded.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return "its marker records no outputs"
    for name, expected in outputs.items():
        path = folder / name
        if not path.is_file():
            return f"output {name} is missing"
        if path.stat().st_size != expected.get("size"):
            return f"output {name} changed size"
        if expected.get("sha256") is not None and _sha256(path) != expected["sha256"]:
            return f"output {name} changed"
    return None


def _is_done(folder: Path, fingerprint: str) -> bool:
    return _why_not_done(folder, fingerprint) is None


def _mark_done(folder: Path, fingerprint: str, stage: str) -> None:
    write_json(_marker(folder), {"fingerprint": fingerprint, "outputs": _outputs(folder, stage)})


def replica_name(k: int) -> str:
    return f"seed-{k}"


class Pipeline:
    def __init__(
        self,
        cfg: RunConfig,
        *,
        from_stage: str | None = None,
        threshold: float | None = None,
        replica: int | None = None,
    ):
        if from_stage is not None and from_stage not in STAGES:
            raise PipelineError(f"--from {from_stage!r}: choose one of {', '.join(STAGES)}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:  # before any stage runs
            raise PipelineError(
                f"--threshold {threshold}: must be in [0, 1] (judge scores are normalised)"
            )
        self.cfg = cfg
        self.replica = replica
        self.layout = RunLayout(
            Path(cfg.run_dir),
            replica_name(replica) if replica is not None else None,
            teacher_shared=not cfg.teacher_samples,
        )
        self.from_stage = from_stage
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
        why = _why_not_done(folder, fingerprint)
        if not forced and why is None:
            if self.is_main:
                console.print(f"[dim]- {stage}: up to date ({folder}), skipped[/dim]")
            return True
        if not forced and self.is_main and _marker(folder).exists():
            console.print(f"- {stage}: redoing it, {why} ({folder})")
        if self.world_size > 1 and stage != "train":
            raise PipelineError(
                f"stage '{stage}' is not up to date, and under several processes only training runs: "
                f"run `qrdistill {'filter' if STAGES.index(stage) <= 2 else stage} CONFIG` on one process "
                "first, then `accelerate launch -m qrdistill train CONFIG`"
            )
        return False

    def _mark_done(self, folder: Path, fingerprint: str, stage: str) -> None:
        if self.is_main:
            _mark_done(folder, fingerprint, stage)

    def _forget_forced(self, stages: tuple[str, ...]) -> None:
        """--from / --force: before anything runs, forget that the forced stages finished (a
        finished method's training folder goes, as its retraining would remove it anyway). An
        interrupted forced run then continues with the same command without --from/--force:
        what it finished again is marked done, the rest is not."""
        forced = [s for s in stages if STAGES.index(s) >= self.force_from and s in OUTPUTS]
        if "train" in forced:
            finished = [m for m in self.methods if _marker(self.layout.train(m)).exists()]
            if finished and self.world_size > 1:
                raise PipelineError(
                    f"--from/--force would retrain {', '.join(finished)}; retrain on one "
                    "process, or remove those folders, before training under several processes"
                )
        if not self.is_main:
            return
        for stage in forced:
            if stage == "train":
                for method in self.methods:
                    if _marker(self.layout.train(method)).exists():
                        shutil.rmtree(self.layout.train(method))
            else:
                _marker(getattr(self.layout, stage)).unlink(missing_ok=True)

    def _header(self, stage: str, what: str) -> None:
        console.rule(f"[bold]{stage}[/bold]: {what}")

    # -- stages ------------------------------------------------------------------------------
    def run_data(self) -> None:
        from qrdistill.data import prepare_splits

        fp = self._prints["data"] = _fingerprint(
            self.cfg.data.model_dump(mode="json"), self.cfg.seed
        )
        if self._should_skip("data", self.layout.data, fp):
            return
        self._header("data", f"task {self.cfg.data.task}")
        paths = prepare_splits(self.cfg.data, self.layout.data)
        for split, path in paths.items():
            console.print(
                f"  {split}: {sum(1 for _ in open(path, encoding='utf-8'))} questions -> {path}"
            )
        self._mark_done(self.layout.data, fp, "data")

    def run_generate(self) -> None:
        from qrdistill.teacher import generate_paths

        revthink = self.cfg.revthink
        # What the paths depend on, which the later stages chain from; the stage itself also
        # depends on whether it writes RevThink's data, so adding or dropping revthink redoes it
        # (from its cache) without retraining the methods that do not read that data.
        fp = self._prints["generate"] = _fingerprint(
            self._prints["data"], self.cfg.generate.model_dump(mode="json")
        )
        if revthink:
            fp = self._prints["revthink"] = _fingerprint(fp, "revthink")
        if self._should_skip("generate", self.layout.generate, fp):
            return
        self._header(
            "generate",
            "teacher reasoning paths, one per style"
            + (", and RevThink's data" if revthink else ""),
        )
        generate_paths(
            self.cfg.generate, self.layout.data / "train.jsonl", self.layout.generate, revthink
        )
        self._mark_done(self.layout.generate, fp, "generate")

    def run_filter(self) -> None:
        from qrdistill.quality import filter_paths, funnel_table

        fp = self._prints["filter"] = _fingerprint(
            self._prints["generate"], self.cfg.filter.model_dump(mode="json"), self.threshold
        )
        if self._should_skip("filter", self.layout.filter, fp):
            return
        self._header("filter", "answer check and LLM judge")
        filter_paths(
            self.cfg.filter, self.layout.paths, self.layout.filter, threshold=self.threshold
        )
        console.print(funnel_table(read_json(self.layout.filter / "funnel.json")))
        self._mark_done(self.layout.filter, fp, "filter")

    def training_paths(self, method: str) -> Path:
        """The judge-filtered paths, or every generated path for methods without the quality
        filter (no_filter; the baselines, whose objectives keep the answer-correct ones)."""
        _, filtered = self.cfg.method_train_config(method)
        return self.layout.kept if filtered else self.layout.paths

    def run_train(self) -> None:
        from qrdistill.training import train

        for method in self.methods:
            train_cfg, filtered = self.cfg.method_train_config(method)
            upstream = self._prints["filter"] if filtered else self._prints["generate"]
            if train_cfg.objective == "revthink":  # it also reads generate/revthink.jsonl
                upstream = _fingerprint(upstream, self._prints["revthink"])
            fp = self._prints[f"train:{method}"] = _fingerprint(
                upstream, train_cfg.model_dump(mode="json"), filtered
            )
            out = self.layout.train(method)
            if self._should_skip("train", out, fp):
                continue
            self._header("train", f"method {method}")
            if (out / ".stage.json").exists():  # its config changed since it finished: start over
                if self.world_size > 1:
                    raise PipelineError(
                        f"{out} was trained with another config; remove it, or retrain "
                        "it on one process, before training it under several processes"
                    )
                shutil.rmtree(out)
            train(
                train_cfg,
                self.training_paths(method),
                out,
                resume=(out / "checkpoints").exists(),
                method=method,
            )
            self._mark_done(out, fp, "train")
            if self.is_main:  # finished and recorded: the resumable state is of no further use
                shutil.rmtree(out / "checkpoints", ignore_errors=True)

    def eval_models(self):
        from qrdistill.evaluation import EvalModel

        models = []
        if self.cfg.zero_shot:
            models += [
                EvalModel(method="zero_shot", student=s.name, model=s.model)
                for s in self.cfg.train.students
            ]
        for method in self.methods:
            train_cfg, _ = self.cfg.method_train_config(method)
            models += [
                EvalModel(
                    method=method,
                    student=s.name,
                    model=str(self.layout.train(method) / "students" / s.name),
                    fingerprint=self._prints.get(f"train:{method}", ""),
                )
                for s in train_cfg.students
            ]
        return models

    def run_evaluate(self) -> None:
        from qrdistill.evaluation import evaluate

        trained = [self._prints[k] for k in sorted(self._prints) if k.startswith("train:")]
        fp = self._prints["evaluate"] = _fingerprint(
            self._prints["data"],
            trained,
            self.cfg.evaluate.model_dump(mode="json"),
            self.cfg.zero_shot,
        )
        if self._should_skip("evaluate", self.layout.evaluate, fp):
            return
        self._header("evaluate", "each student alone on the test split")
        evaluate(
            self.cfg.evaluate,
            self.layout.data / "test.jsonl",
            self.eval_models(),
            self.layout.evaluate,
            # Replicas after the first take its zero-shot answers (same models, same questions).
            reuse_from=self.layout.root / replica_name(0) / "evaluate" if self.replica else None,
            # Each student's default answer budget: the teacher's longest path in its tokens.
            paths_path=self.layout.paths if self.layout.paths.exists() else None,
        )
        self._mark_done(self.layout.evaluate, fp, "evaluate")

    def run_report(self) -> Path:
        from qrdistill.reporting import build_report

        self._header("report", str(self.layout.report))
        return build_report(self.layout.root, self.layout.report)

    # -- the whole run -------------------------------------------------------------------------
    def run(self, stages: tuple[str, ...] = STAGES) -> Path | None:
        run = self._run if self.cfg.seeds == 1 or self.replica is not None else self._run_seeds
        if not self.is_main:  # the main process holds the run directory's lock for all of them
            return run(stages)
        with RunLock(self.layout.root):
            return run(stages)

    def _run_seeds(self, stages: tuple[str, ...]) -> Path | None:
        """Every replica up to evaluation, then the mean and sd over seeds, then the report."""
        from qrdistill.evaluation.metrics import across_seeds

        self.layout.root.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            with atomic_open(self.layout.root / "config.yaml") as handle:
                handle.write(dump_yaml(self.cfg))
        # Stages the replicas share run (or are redone) once, with the first replica.
        own = STAGES.index("train" if self.layout.teacher_shared else "generate")
        last = min(max(STAGES.index(s) for s in stages), STAGES.index("evaluate"))
        replicas = []
        for k in range(self.cfg.seeds):
            from_stage = self.from_stage
            if k > 0 and from_stage is not None and STAGES.index(from_stage) < own:
                from_stage = STAGES[own]
            replica = Pipeline(
                self.cfg.replica(k), from_stage=from_stage, threshold=self.threshold, replica=k
            )
            console.rule(f"[bold]seed {k + 1} of {self.cfg.seeds}[/bold] ({replica.layout.base})")
            replica._run((STAGES[last],))
            replicas.append(replica.layout.evaluate)
        if last < STAGES.index("evaluate"):
            return None
        if self.is_main:
            write_json(
                self.layout.seeds,
                {
                    "seeds": self.cfg.seeds,
                    "replicas": [str(p.parent.relative_to(self.layout.root)) for p in replicas],
                    "teacher_shared": self.layout.teacher_shared,
                    "accuracy": across_seeds(
                        [read_json(p / "summary.json") for p in replicas], "accuracy"
                    ),
                    "paired": across_seeds(
                        [read_json(p / "paired.json") for p in replicas], "difference"
                    ),
                },
            )
        return self.run_report() if "report" in stages else None

    def _run(self, stages: tuple[str, ...]) -> Path | None:
        self.layout.base.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            with atomic_open(self.layout.base / "config.yaml") as handle:
                handle.write(dump_yaml(self.cfg))
        report = None
        # Earlier stages still run (and are skipped when up to date) so that fingerprints chain.
        last = max(STAGES.index(s) for s in stages)
        self._forget_forced(STAGES[: last + 1])
        for stage in STAGES[: last + 1]:
            result = getattr(self, f"run_{stage}")()
            if stage == "report":
                report = result
        return report
