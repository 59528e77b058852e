"""Methods: the named training variants a run trains and compares (the paper's Tables 1 and 2).

A method is a `MethodSpec`: overrides of the run's `train` section, and whether it trains on the
quality-filtered paths. Every method trains in the same engine on the same data; each is one
config change, so a comparison differs only in what its name says. A method is not an objective:
`TrainConfig.objective` is the loss family a method trains with (`qr_distill`, `sft_single`,
`answer_aug`, `step_by_step`, `revthink`); several methods share the `qr_distill` objective and differ in
routing, peer teaching or data (docs/METHOD.md, "Baselines and ablations").

This module knows nothing of the run config: `qrdistill.config.RunConfig` imports it.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from pydantic import Field

from qrdistill.errors import ConfigError
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import StrictConfig, set_dotted, validate_config


class MethodSpec(StrictConfig):
    """A training variant: overrides on top of the `train` section.

    `train` holds dotted keys of TrainConfig (e.g. {"routing.mode": "all"}). `quality_filter: false`
    trains on every generated path instead of the filtered ones (the "without quality filtering"
    ablation; the baselines, whose objectives keep the answer-correct paths themselves). Known
    names (see PRESETS) get their preset when left empty.
    """

    train: dict[str, Any] = Field(default_factory=dict)
    quality_filter: bool = True


_PLAIN_SFT = {"routing.mode": "all", "peer.enabled": False}


def _baseline(objective: str) -> MethodSpec:
    """A baseline of the paper's Table 1: plain SFT on every answer-correct teacher path (its
    objective keeps the correct ones). The judge is part of QR-Distill, not of the baselines, so
    they do not read the judge-filtered file (docs/METHOD.md, "Baselines and ablations")."""
    return MethodSpec(train={"objective": objective, **_PLAIN_SFT}, quality_filter=False)


PRESETS: dict[str, MethodSpec] = {
    # The full method: filtered paths, learned routing, peer teaching.
    "qr_distill": MethodSpec(),
    # Baselines (Table 1).
    "sft_single": _baseline("sft_single"),
    "step_by_step": _baseline("step_by_step"),
    "answer_aug": _baseline("answer_aug"),
    # RevThink (Chen et al., NAACL 2025): its three tasks as plain multi-task SFT; the generate
    # stage asks the teacher for its backward data when a run trains it.
    "revthink": _baseline("revthink"),
    # Ablations (Table 2).
    "no_filter": MethodSpec(quality_filter=False),
    "no_routing": MethodSpec(train={"routing.mode": "all"}),
    "random_routing": MethodSpec(train={"routing.mode": "random"}),
    "no_peer": MethodSpec(train={"peer.enabled": False}),
    "frozen_second": MethodSpec(train={"students.1.frozen": True}),
}


def resolve_method(name: str, spec: MethodSpec | None) -> MethodSpec:
    """A preset when the entry is empty; an empty entry with an unknown name is most likely a typo."""
    empty = spec is None or (not spec.train and spec.quality_filter)
    if not empty:
        return spec
    if name not in PRESETS:
        hint = difflib.get_close_matches(name, PRESETS, n=1)
        raise ConfigError(
            f"methods.{name}: not a preset and no overrides given"
            + (f" (did you mean '{hint[0]}'?)" if hint else "")
            + f"; presets: {', '.join(PRESETS)}; or give overrides, e.g. {name}: {{train: {{peer.enabled: false}}}}"
        )
    return PRESETS[name]


def method_train_config(
    train: TrainConfig, name: str, spec: MethodSpec | None
) -> tuple[TrainConfig, bool]:
    """The TrainConfig of method `name` (the run's `train` section with the method's overrides)
    and whether it trains on quality-filtered paths."""
    spec = resolve_method(name, spec)
    data = copy.deepcopy(train.model_dump(mode="python"))
    for key, value in spec.train.items():
        set_dotted(data, key.split("."), value, f"methods.{name}.train.{key}")
    return validate_config(TrainConfig, data, f"methods.{name}"), spec.quality_filter
