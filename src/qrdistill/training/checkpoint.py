"""Resumable training state, written atomically.

A checkpoint is a folder `checkpoints/step-N/` holding the trainable state only (LoRA adapters,
router, peer modules and the router's running-mean buffer: not the frozen base weights), the
optimizer and scheduler, every rank's RNG states and the data position (`progress.json`). It is
assembled in a hidden temp folder and renamed into place, then `latest.json` is replaced
atomically: a crash at any moment leaves the previous checkpoint intact and pointed to.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from qrdistill.utils.io import atomic_open, read_json, write_json


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    # Buffers of our own modules (the router's baseline) are training state too.
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if k in names or k.startswith(("router.", "peer."))}


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
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
    and prune all but the newest `keep` checkpoints."""
    stage = staging_dir(root, step)
    _save_torch(trainable_state(model), stage / "trainable.pt")
    _save_torch(optimizer.state_dict(), stage / "optimizer.pt")
    _save_torch(scheduler.state_dict(), stage / "scheduler.pt")
    write_json(stage / "progress.json", progress)
    final = root / f"step-{step}"
    shutil.rmtree(final, ignore_errors=True)
    stage.rename(final)
    write_json(root / "latest.json", {"step": step, "path": final.name})
    done = sorted((p for p in root.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
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
    """Restore everything saved by `commit` into the (unwrapped) model; return the progress."""
    state = torch.load(path / "trainable.pt", weights_only=False)
    missing = set(trainable_state(model)) - set(state)
    if missing:
        raise ValueError(f"{path}: checkpoint does not match this configuration "
                         f"(missing {sorted(missing)[:3]}...); resume with the config it was made with")
    model.load_state_dict(state, strict=False)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng_file = path / f"rng-{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return read_json(path / "progress.json")
