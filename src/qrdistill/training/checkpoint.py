"""Resumable training state, written atomically.

A checkpoint is a folder `checkpoints/step-N/` holding the trainable state only (LoRA adapters,
router, peer modules and the router's running-mean buffer: not the frozen base weights), the
optimizer and scheduler, every rank's RNG states and the data position (`progress.json`).
Under FSDP or DeepSpeed, where each rank holds only shards of the model and optimizer, those
(and the RNG states) are written and read by `accelerate`'s `save_state` / `load_state` into the
same folder instead; the scheduler and progress stay ours. It is
assembled in a hidden temp folder and renamed into place, then `latest.json` is replaced
atomically: a crash at any moment leaves the previous checkpoint intact and pointed to.

Every checkpoint carries the fingerprint of what shapes training (`fingerprint`): the TrainConfig
without the keys that change neither the weights nor metrics.jsonl (COSMETIC_KEYS), and the
sha256 of the paths file. `resumable` hands back the latest checkpoint only when its fingerprint
is the current one; otherwise it logs a warning naming what changed and the stage retrains from
scratch. A run is never resumed silently on another config or other data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from qrdistill.errors import CheckpointMismatch, DataError
from qrdistill.utils.io import atomic_open, read_json, write_json

log = logging.getLogger(__name__)

# Keys of TrainConfig that change neither the trained weights nor the rows of metrics.jsonl and
# routing.jsonl: a resume may differ in them. Everything else (learning rates, epochs, max_steps,
# schedule, seed, LoRA, routing, peer, log_every, ...) is part of the fingerprint.
COSMETIC_KEYS = (
    "progress",
    "report_to",
    "checkpoint_every",
    "checkpoint_keep",
    "routing.cache_dir",
)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(cfg, paths_path: Path) -> dict:
    """What a checkpoint was made from: {"sha256", "config" (shaping keys only), "data"}."""
    config = cfg.model_dump(mode="json")
    for key in COSMETIC_KEYS:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.get(part, {})
        node.pop(last, None)
    data = {"sha256": _file_sha256(Path(paths_path)), "size": Path(paths_path).stat().st_size}
    blob = json.dumps({"config": config, "data": data["sha256"]}, sort_keys=True).encode()
    return {"sha256": hashlib.sha256(blob).hexdigest(), "config": config, "data": data}


def _changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changes(a, b, f"{name}.")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                if isinstance(x, dict) and isinstance(y, dict):
                    keys += _changes(x, y, f"{name}.{i}.")
                elif x != y:
                    keys.append(f"{name}.{i}")
        elif a != b:
            keys.append(name)
    return keys


def resumable(root: Path, current: dict) -> Path | None:
    """The latest checkpoint under `root` if it was made from exactly `current` (a `fingerprint`),
    else None. A checkpoint from another config or other data is not resumed: a warning says what
    changed, and the caller starts from scratch (which removes the old checkpoints)."""
    found = latest(root)
    if found is None:
        return None
    try:
        saved = read_json(found / "progress.json").get("fingerprint")
    except DataError:
        saved = None
    if saved is not None and saved.get("sha256") == current["sha256"]:
        return found
    if saved is None:
        why = "it records no fingerprint (made by an older version)"
    else:
        changed = _changes(saved.get("config", {}), current["config"])
        if saved.get("data", {}).get("sha256") != current["data"]["sha256"]:
            changed.append("the training data (paths file)")
        why = f"changed since: {', '.join(changed) or 'unknown'}"
    log.warning(
        "not resuming %s: it was made with another config or other data (%s); "
        "training from scratch",
        found,
        why,
    )
    return None


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    # Buffers of our own modules (the router's baseline) are training state too.
    return {
        k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if k in names or k.startswith(("router.", "peer."))
    }


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_torch(obj, path: Path) -> None:
    with atomic_open(path, "wb", encoding=None) as handle:
        torch.save(obj, handle)


def staging_dir(root: Path, step: int) -> Path:
    return root / f".tmp-step-{step}"


def save_rank_rng(root: Path, step: int, rank: int) -> None:
    """Every rank writes its RNG state into the staging folder before the main rank commits it."""
    _save_torch(rng_state(), staging_dir(root, step) / f"rng-{rank}.pt")


def commit(root: Path, step: int, model, optimizer, scheduler, progress: dict, keep: int) -> Path:
    """Main rank: write the rest, rename the staging folder to step-N, point latest.json at it,
    and prune all but the newest `keep` checkpoints. `model` and `optimizer` are None when every
    rank already wrote its shards of them there (`accelerate.save_state`, FSDP / DeepSpeed)."""
    stage = staging_dir(root, step)
    if model is not None:
        _save_torch(trainable_state(model), stage / "trainable.pt")
        _save_torch(optimizer.state_dict(), stage / "optimizer.pt")
    _save_torch(scheduler.state_dict(), stage / "scheduler.pt")
    write_json(stage / "progress.json", progress)
    final = root / f"step-{step}"
    shutil.rmtree(final, ignore_errors=True)
    stage.rename(final)
    write_json(root / "latest.json", {"step": step, "path": final.name})
    done = sorted(
        (p for p in root.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1])
    )
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(root: Path) -> Path | None:
    pointer = root / "latest.json"
    if not pointer.exists():
        return None
    path = root / read_json(pointer)["path"]
    return path if (path / "progress.json").exists() else None


def load(path: Path, model, optimizer, scheduler, rank: int) -> dict:
    """Restore everything saved by `commit` into the (unwrapped) model; return the progress.
    `model` and `optimizer` are None when `accelerate.load_state` restored them (and the RNG)."""
    if model is not None:
        state = torch.load(path / "trainable.pt", weights_only=False)
        missing = set(trainable_state(model)) - set(state)
        if missing:
            raise CheckpointMismatch(
                f"{path}: checkpoint does not match this configuration (missing "
                f"{sorted(missing)[:3]}...); resume with the config it was made with, or remove "
                "the checkpoints folder to train from scratch"
            )
        model.load_state_dict(state, strict=False)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng_file = path / f"rng-{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return read_json(path / "progress.json")
