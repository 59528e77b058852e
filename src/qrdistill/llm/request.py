"""One request to a backend: its prompt, its cache key and its seed, fixed by what decides its
output (so samples differ and reruns repeat them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from qrdistill.llm.cache import request_key
from qrdistill.llm.config import BackendConfig


@dataclass(frozen=True)
class Request:
    key: str  # cache key
    prompt: str  # the user message, as the model sees it
    seed: int | None
    label: str  # names the request in errors, e.g. "question q7, style program, sample 0"


def make_request(cfg: BackendConfig, prompt: str, sample_index: int, label: str) -> Request:
    key = request_key(cfg.kind, cfg.model, prompt, cfg.sampling(), sample_index)
    # Each request gets its own seed, fixed by its key: samples differ, reruns repeat them.
    seed = (
        None
        if cfg.seed is None
        else int(hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()[:8], 16)
    )
    return Request(key=key, prompt=prompt, seed=seed, label=label)


def never_stop() -> bool:
    return False
