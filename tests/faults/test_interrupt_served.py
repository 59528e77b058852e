"""Ctrl-C (SIGINT) on a real `qrdistill` process whose teacher is a real `transformers serve`
behind a counting proxy: exit status 130, the command that continues printed, and that command
finishes the stage asking only for what was not finished (the request abandoned in flight is
the only one asked twice, and it was never stored). test_bad_answers.py covers Ctrl-C while
requests hang (a stub); this is the same on a real server, through the whole CLI."""

from __future__ import annotations

import shlex
import sqlite3

import pytest
import yaml
from fault_tools import interrupt_when, run_continue_command, served_backend

from qrdistill.records import ReasoningPath
from qrdistill.utils.io import read_jsonl_as
from run_configs import small_run

pytestmark = pytest.mark.server


def finished(cache) -> int:
    try:
        with sqlite3.connect(cache) as conn:
            return conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_ctrl_c_during_generate_prints_the_continue_command_and_it_repeats_nothing(
    served_model, proxy, tmp_path
):
    run = tmp_path / "run"
    backend = served_backend(proxy, served_model)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(small_run(run, backend, data={"train_size": 4})))
    cache = run / "generate" / "cache.sqlite"
    command = interrupt_when(["generate", str(config), "--force"], lambda: finished(cache) >= 2)
    # --force is not repeated: the pipeline forgot the forced stage as it started.
    assert command == f"qrdistill generate {shlex.quote(str(config))}", command
    kept = finished(cache)
    asked_before = proxy.completions()
    assert 2 <= kept < 8 and not (run / "generate" / "paths.jsonl").exists()

    run_continue_command(command)
    asked_after = proxy.completions()[len(asked_before) :]
    assert len(asked_after) == 8 - kept  # only what was not finished
    stored_before = {(b["messages"][0]["content"], b["seed"]) for b in asked_before[:kept]}
    assert not stored_before & {(b["messages"][0]["content"], b["seed"]) for b in asked_after}
    paths = read_jsonl_as(run / "generate" / "paths.jsonl", ReasoningPath)
    assert len(paths) == 8 and finished(cache) == 8
