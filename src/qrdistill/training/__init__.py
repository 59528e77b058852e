"""Training stage (docs/METHOD.md, "Routing" and "Peer teaching"): several students distilled jointly from the kept
teacher paths, with a learned router and peer teaching; baselines and ablations by config.

`train(cfg, paths_path, out_dir, resume=False) -> out_dir`; see `recipe.py` for the loop.
"""

from qrdistill.training.config import TrainConfig
from qrdistill.errors import TrainingDiverged
from qrdistill.training.recipe import train

__all__ = ["TrainConfig", "TrainingDiverged", "train"]
