"""Baselines and ablations as named overrides of the QR-Distill training config.

Every method trains in the same engine on the same data; each is one config change, so a
comparison differs only in what its name says. Names match the paper's Tables 1 and 2.
"""

from __future__ import annotations

import copy

from qrdistill.config import MethodSpec, RunConfig
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import ConfigError, set_dotted, validate_config

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
    if spec is None or (not spec.train and spec.quality_filter and name in PRESETS):
        if name not in PRESETS:
            raise ConfigError(
                f"methods.{name}: unknown method with no overrides; known presets: {', '.join(PRESETS)}"
            )
        return PRESETS[name]
    return spec


def method_train_config(cfg: RunConfig, name: str) -> tuple[TrainConfig, bool]:
    """The TrainConfig of one method and whether it trains on quality-filtered paths."""
    spec = resolve_method(name, cfg.methods[name])
    data = copy.deepcopy(cfg.train.model_dump(mode="python"))
    for key, value in spec.train.items():
        set_dotted(data, key.split("."), value, f"methods.{name}.train.{key}")
    return validate_config(TrainConfig, data, f"methods.{name}"), spec.quality_filter
