"""Run by test_distributed.py under `accelerate launch --num_processes 2 --cpu`: trains, then each
rank dumps what must agree across ranks (parameters, router evidence, gathered routing stats) and
what must differ (the paths it trained on).

MODE: `run` (from scratch), `resume` (from the run directory's last checkpoint), or
`sigint-rank1-at-step-N`: rank 1 alone gets SIGINT (as `kill -INT PID` of one worker) while it
computes optimizer step N, and both ranks must stop after that same step."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

from qrdistill.training.checkpoint import trainable_state
from qrdistill.training.config import TrainConfig
from qrdistill.training.recipe import Recipe


def main(config: str, paths: str, out: str, mode: str = "run") -> None:
    cfg = TrainConfig.model_validate_json(Path(config).read_text())
    recipe = Recipe(cfg, Path(paths), Path(out), resume=mode == "resume").setup()
    seen: list[int] = []
    original = recipe.micro_step

    def recording(batch, micro_id):
        world, rank = recipe.acc.num_processes, recipe.acc.process_index
        seen.extend(((batch * world)[: -(-len(batch) // world) * world])[rank::world])
        return original(batch, micro_id)

    recipe.micro_step = recording
    if mode.startswith("sigint-rank1-at-step-"):
        at_step = int(mode.rsplit("-", 1)[1])
        step = recipe.optimizer_step

        def interrupted(*args, **kwargs):
            if recipe.acc.process_index == 1 and recipe.progress.step + 1 == at_step:
                os.kill(os.getpid(), signal.SIGINT)
            return step(*args, **kwargs)

        recipe.optimizer_step = interrupted
    recipe.fit()
    # Before export, which merges the adapters on the main rank.
    model = recipe.acc.unwrap_model(recipe.model)
    advantage, se = model.router(recipe.embeddings)
    torch.save(
        {
            "state": trainable_state(model),
            "evidence": torch.stack([advantage, se]),
            "routing": recipe.last_routing,
            "seen": seen,
            "world": recipe.acc.num_processes,
        },
        Path(out) / f"rank{recipe.acc.process_index}.pt",
    )
    recipe.export()


if __name__ == "__main__":
    main(*sys.argv[1:])
