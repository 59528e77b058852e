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
```
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field, model_validator

from qrdistill.data.config import DataConfig
from qrdistill.evaluation.config import EvaluateConfig
from qrdistill.methods import MethodSpec, method_train_config
from qrdistill.quality.config import FilterConfig
from qrdistill.reporting.config import ReportConfig
from qrdistill.tasks.config import TaskSpec
from qrdistill.teacher.config import GenerateConfig
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import StrictConfig, load_config, load_yaml

QUICKSTART = "quickstart"


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
