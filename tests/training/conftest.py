"""Fixtures for the training tests: a small paths file and a config factory for the tiny students."""

from __future__ import annotations

import pytest
from training_paths import make_paths

from qrdistill.training.config import TrainConfig
from qrdistill.utils.io import write_jsonl


@pytest.fixture
def paths_file(tmp_path):
    path = tmp_path / "kept.jsonl"
    write_jsonl(path, make_paths())
    return path


@pytest.fixture(scope="session")
def embed_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture
def make_config(tiny_students, embed_cache):
    a, b = tiny_students

    def build(**overrides) -> TrainConfig:
        data = {
            "students": [
                {
                    "name": "llama",
                    "model": str(a),
                    "lr": 1e-3,
                    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                },
                {
                    "name": "qwen",
                    "model": str(b),
                    "lr": 1e-3,
                    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                },
            ],
            "routing": {"cache_dir": str(embed_cache)},
            "peer": {"dim": 16},
            "epochs": 1,
            "batch_size": 4,
            "max_length": 128,
            "log_every": 1,
            "checkpoint_every": 2,
            "progress": False,
            "seed": 0,
        }
        for key, value in overrides.items():
            node = data
            *parents, last = key.split("__")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return TrainConfig.model_validate(data)

    return build
