"""Fixtures shared by every stage's tests. Stage-specific fixtures live in tests/<stage>/conftest.py."""

from __future__ import annotations

import os

import pytest

# Tests never reach a hub: everything they load is built here or ships in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_students(tmp_path_factory):
    """Two tiny random students with different tokenizers and architectures: (llama+chat, qwen2 plain)."""
    from tiny_models import make_tiny_student

    root = tmp_path_factory.mktemp("tiny_students")
    a = make_tiny_student(root / "student_a", arch="llama", vocab_size=400, chat=True, seed=0)
    b = make_tiny_student(root / "student_b", arch="qwen2", vocab_size=520, chat=False, seed=1)
    return a, b
