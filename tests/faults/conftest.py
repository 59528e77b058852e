"""Fixtures of the fault suite: a tiny run config (tiny students, hf teacher) and a CLI runner that
returns (exit status, stderr lines). Plain helpers live in fault_tools.py: a test module imports
them from there, since every test folder has a `conftest` and only one can be imported by that
name when pytest collects several folders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from served_model import (  # noqa: E402,F401 - shared fixtures
    examples_path,
    pauses,
    proxy,
    served_model,
)


@pytest.fixture
def cli(capsys):
    """Run `qrdistill ARGS` in this process: (exit status, the non-empty lines of stderr)."""
    from qrdistill.cli import main

    def run(*args: str) -> tuple[int, list[str]]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if line.strip()]

    return run
