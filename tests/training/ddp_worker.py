"""Run by test_distributed.py under `accelerate launch --num_processes 2 --cpu`: trains, then each
rank dumps what must agree across ranks (parameters, router evidence, gathered routing stats) and
what must differ (the paths it trained on)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from qrdistill.training.checkpoint import trainable_state
from qrdistill.training.config import TrainConfig
from qrdistill.training.recipe import Recipe


def main(config: str, paths: str, out: str) -> None:
    cfg = TrainConfig.model_validate_json(Path(config).read_text())
    recipe = Recipe(cfg, Path(paths), Path(out))
    seen: list[int] = []
    original = recipe.micro_step

    def recording(batch, micro_id):
        world, rank = recipe.acc.num_processes, recipe.acc.process_index
        seen.extend(((batch * world)[: -(-len(batch) // world) * world])[rank::world])
        return original(batch, micro_id)

    recipe.micro_step = recording
    finish = recipe._finish

    def dump_then_finish():  # before export, which merges the adapters on the main rank
        model = recipe.acc.unwrap_model(recipe.model)
        advantage, se = model.router(recipe.embeddings)
        evidence = torch.stack([advantage, se])
        torch.save(
            {
                "state": trainable_state(model),
                "evidence": evidence,
                "routing": recipe.last_routing,
                "seen": seen,
                "world": recipe.acc.num_processes,
            },
            Path(out) / f"rank{recipe.acc.process_index}.pt",
        )
        finish()

    recipe._finish = dump_then_finish
    recipe.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
