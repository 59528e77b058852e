"""Baselines and ablations as named overrides of the QR-Distill training config.

Every method trains in the same engine on the same data; each is one config change, so a
comparison differs only in what its name says. Names match the paper's Tables 1 and 2.
"""

from __future__ import annotations

import copy
import difflib

from qrdistill.config import MethodSpec, RunConfig
from qrdistill.training.config import TrainConfig
from qrdistill.errors import ConfigError
from qrdistill.utils.config import set_dotted, validate_config

_PLAIN_SFT = {"routing.mode": "all", "peer.enabled": False}

PRESETS: dict[str, MethodSpec] = {
    # The full method: filtered paths, learned routing, peer teaching.
    "qr_distill": MethodSpec(),
    # Baselines (Table 1).
    "sft_single": MethodSpec(train={"method": "sft_single", **_PLAIN_SFT}),
    "step_by_step": MethodSpec(train={"method": "step_by_step", **_PLAIN_SFT}),
    "answer_aug": MethodSpec(train={"method": "answer_aug", **_PLAIN_SFT}),
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


def method_train_config(cfg: RunConfig, name: str) -> tuple[TrainConfig, bool]:
    """The TrainConfig of one method and whether it trains on quality-filtered paths."""
    spec = resolve_method(name, cfg.methods[name])
    data = copy.deepcopy(cfg.train.model_dump(mode="python"))
    for key, value in spec.train.items():
        set_dotted(data, key.split("."), value, f"methods.{name}.train.{key}")
    return validate_config(TrainConfig, data, f"methods.{name}"), spec.quality_filter
