"""Training stage (docs/METHOD.md, "Routing" and "Peer teaching"): several students distilled
jointly from the kept teacher paths, with a learned router and peer teaching; baselines and
ablations by config.

`train(cfg, paths_path, out_dir, resume=False, method=None) -> out_dir`; see `recipe.py` for the loop.
"""

from qrdistill.errors import TrainingDiverged
from qrdistill.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainingDiverged", "train"]


def __getattr__(name: str):
    # Loaded on first use: `qrdistill.config` imports TrainConfig, and reading a config should not
    # pay for importing torch (tests/core/test_import_graph.py).
    if name == "train":
        from qrdistill.training.recipe import train

        return train
    raise AttributeError(f"module 'qrdistill.training' has no attribute '{name}'")
