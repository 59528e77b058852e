"""Fixtures for the training tests: a small paths file and a config factory for the tiny students."""

from __future__ import annotations

import pytest

from qrdistill.records import ReasoningPath
from qrdistill.training.config import TrainConfig
from qrdistill.utils.io import write_jsonl

STYLES = ["chain_of_thought", "program", "backward"]


def make_paths(n_questions: int = 4) -> list[ReasoningPath]:
    paths = []
    for q in range(n_questions):
        a, b = 3 + q, 5 + 2 * q
        for k, style in enumerate(STYLES):
            text = {
                "chain_of_thought": f"First {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}.",
                "program": f"def solve():\n    print({a} + {b})\n# prints {a + b}\nThe answer is \\boxed{{{a + b}}}.",
                "backward": f"Guess {a + b}. Check: {a + b} - {b} = {a}. The answer is \\boxed{{{a + b}}}.",
            }[style]
            paths.append(
                ReasoningPath(
                    id=ReasoningPath.make_id(f"q{q}", style, 0),
                    question_id=f"q{q}",
                    task="gsm8k",
                    style=style,
                    prompt=f"Question: what is {a} + {b}? Put the answer in \\boxed{{}}.",
                    gold=str(a + b),
                    text=text,
                    answer=str(a + b),
                    correct=(k != 2 or q % 2 == 0),
                    kept=True,
                )
            )
    return paths


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
            "routing": {"cache_dir": str(embed_cache), "hidden": 16},
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
