"""The whole run's configuration: one typed section per stage, plus the methods (variants) to compare.

```yaml
run_dir: runs/my-run
data:     {...}   # qrdistill.data.config.DataConfig
generate: {...}   # qrdistill.teacher.config.GenerateConfig
filter:   {...}   # qrdistill.quality.config.FilterConfig
train:    {...}   # qrdistill.training.config.TrainConfig  (the QR-Distill setting)
evaluate: {...}   # qrdistill.evaluation.config.EvaluateConfig
report:   {...}   # qrdistill.reporting.config.ReportConfig
methods:          # the variants to train and compare on the same data; see qrdistill.methods
  qr_distill: {}  # a preset: train as the `train` section says (objective qr_distill)
  sft_single: {}  # a preset: objective sft_single, no routing, no peer teaching
suite:            # optional: several tasks, each in run_dir/<name>/ (qrdistill.suite)
  arc_challenge: {}                                   # data.task defaults to the entry's name
  math: {data: {test_size: 500}, train: {epochs: 3}}  # whole keys of `data`; dotted `train` keys
  anli: {methods: [qr_distill]}                       # a subset of the methods
```
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from qrdistill.data.config import DataConfig
from qrdistill.errors import ConfigError
from qrdistill.evaluation.config import EvaluateConfig
from qrdistill.methods import MethodSpec, method_train_config
from qrdistill.quality.config import FilterConfig
from qrdistill.reporting.config import ReportConfig
from qrdistill.tasks.config import TaskSpec
from qrdistill.teacher.config import GenerateConfig
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import (
    StrictConfig,
    load_config,
    load_yaml,
    set_dotted,
    validate_config,
)

QUICKSTART = "quickstart"
# A suite entry's name is its run directory's name: no separators, nothing hidden.
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SuiteTask(StrictConfig):
    """One task of a suite: what differs from the run's shared sections.

    `data`: keys of the `data` section, each replacing that whole key (a `source` given here is
    the task's whole source, not merged with the shared one); `task` defaults to the entry's
    name. `train`: dotted keys of `train`, as a method's overrides (e.g. {epochs: 3} for MATH,
    as in the paper). `methods`: which of the run's methods this task trains (default all; e.g.
    the ablations only where the paper's Table 2 has them). Students, seeds and the teacher stay
    shared."""

    data: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    methods: list[str] | None = None


class RunConfig(StrictConfig):
    run_dir: Path = Path("runs/quickstart")
    seed: int = 0
    # Repeat training (and the teacher's sampling, when its temperature is above 0) under this
    # many seeds, in run_dir/seed-K/; the report gives mean and sd over them (qrdistill.pipeline).
    seeds: int = Field(1, ge=1)
    tasks: list[TaskSpec] = Field(default_factory=list)
    data: DataConfig = Field(default_factory=DataConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    train: TrainConfig  # students have no sensible default: every config names them
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    methods: dict[str, MethodSpec | None] = Field(default_factory=lambda: {"qr_distill": None})
    zero_shot: bool = True  # also evaluate the untrained base students
    # Several tasks from one config, each a run of its own in run_dir/<name>/ (qrdistill.suite);
    # empty: one task, the `data` section's.
    suite: dict[str, SuiteTask | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _register_user_tasks(self) -> "RunConfig":
        from qrdistill.tasks import register_task

        for spec in self.tasks:
            register_task(spec)
        return self

    @model_validator(mode="after")
    def _methods_resolve(self) -> RunConfig:
        if not self.methods:
            raise ValueError("methods: name at least one method to train, e.g. {qr_distill: {}}")
        for name in self.methods:
            self.method_train_config(name)  # raises with the method's name on a bad override
        return self

    @model_validator(mode="after")
    def _suite_resolves(self) -> RunConfig:
        for name in self.suite:
            if not SUITE_NAME.match(name):
                raise ValueError(
                    f"suite.{name}: a suite entry's name is its folder's name: letters, digits, "
                    "'_', '.', '-', not starting with '.' or '-'"
                )
        self.suite_configs()  # raises with the entry's name on a bad override
        return self

    def suite_configs(self) -> dict[str, RunConfig]:
        """Each suite entry's own run config, in run_dir/<name>, with no suite of its own."""
        return {
            name: self._suite_task(name, spec or SuiteTask()) for name, spec in self.suite.items()
        }

    def _suite_task(self, name: str, spec: SuiteTask) -> RunConfig:
        from qrdistill.tasks import list_tasks

        base = self.model_dump(mode="python", exclude={"suite"})
        data = {**base["data"], "task": name, **spec.data}
        if data["task"] not in list_tasks():
            raise ValueError(
                f"suite.{name}: no task '{data['task']}' (give data.task; tasks: "
                f"{', '.join(list_tasks())})"
            )
        for key, value in spec.train.items():
            set_dotted(base["train"], key.split("."), value, f"suite.{name}.train.{key}")
        if spec.methods is not None:
            unknown = [m for m in spec.methods if m not in base["methods"]]
            if unknown or not spec.methods:
                raise ValueError(
                    f"suite.{name}.methods: name at least one of the run's methods "
                    f"({', '.join(base['methods'])})"
                    + (f"; not among them: {', '.join(unknown)}" if unknown else "")
                )
            base["methods"] = {m: base["methods"][m] for m in spec.methods}
        base.update(data=data, run_dir=Path(self.run_dir) / name)
        return validate_config(RunConfig, base, f"suite.{name}")

    def only_methods(self, names: list[str]) -> RunConfig:
        """This config training only the methods `names` (`qrdistill train --method`); a suite
        entry whose own `methods` list holds none of them is left out."""
        data = self.model_dump(mode="python")
        data["methods"] = {m: data["methods"][m] for m in names}
        suite = {}
        for entry, spec in data["suite"].items():
            listed = (spec or {}).get("methods")
            kept = None if listed is None else [m for m in listed if m in names]
            if kept != []:
                suite[entry] = spec if kept is None else {**spec, "methods": kept}
        if data["suite"] and not suite:
            raise ConfigError(f"no suite entry trains {', '.join(names)}")
        data["suite"] = suite
        return RunConfig.model_validate(data)

    @property
    def teacher_samples(self) -> bool:
        """Whether the teacher's paths depend on its seed (sampling at a temperature above 0)."""
        return self.generate.backend.temperature > 0 and self.generate.backend.seed is not None

    def replica(self, k: int) -> RunConfig:
        """Seed replica k of a run with `seeds` > 1: training seed + k, and the teacher's seed + k
        when it samples. k = 0 is the configured seeds themselves."""
        data = self.model_dump(mode="python")
        data["train"]["seed"] += k
        if self.teacher_samples:
            data["generate"]["backend"]["seed"] += k
        return RunConfig.model_validate(data)

    @property
    def revthink(self) -> bool:
        """Whether a method trains with objective revthink, whose backward data the generate
        stage then asks the teacher for (qrdistill.teacher.revthink)."""
        return any(self.method_train_config(m)[0].objective == "revthink" for m in self.methods)

    def method_train_config(self, name: str) -> tuple[TrainConfig, bool]:
        """The TrainConfig of method `name` and whether it trains on quality-filtered paths."""
        return method_train_config(self.train, name, self.methods[name])


def quickstart_dict() -> dict:
    """The embedded offline default that `qrdistill run` uses when no config is given."""
    text = resources.files("qrdistill").joinpath("resources/quickstart.yaml")
    with resources.as_file(text) as path:
        return load_yaml(path)


def load_run_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> RunConfig:
    if path is None or str(path) == QUICKSTART:
        return load_config(RunConfig, base=quickstart_dict(), overrides=overrides)
    return load_config(RunConfig, path, overrides)
