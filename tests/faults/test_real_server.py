"""A real `transformers serve` that stops answering mid-run (SIGSTOP: the process is there, its
socket accepts, nothing comes back) and then recovers (SIGCONT): the stalled request times out,
is retried, and the run finishes with every path."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time

import pytest

from qrdistill.records import ReasoningPath
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.utils.io import read_jsonl_as
from served_model import openai_backend


def cached(path) -> int:
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.server
def test_real_server_stalls_then_recovers_and_the_run_completes(
    served_model, examples_path, tmp_path, caplog
):
    backend = openai_backend(
        served_model.base_url,
        served_model.model,
        concurrency=1,
        max_tokens=8,
        # Long enough for an answer on a busy 2-core machine, short enough to stall past.
        request_timeout_s=8,
        max_retries=4,
        backoff_base_s=0.1,
        backoff_max_s=0.5,
    )
    cfg = GenerateConfig(backend=backend, styles=["vanilla", "program"], show_progress=False)
    out = tmp_path / "gen"
    result: dict = {}

    def generate():
        try:
            result["paths"] = generate_paths(cfg, examples_path, out)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            result["error"] = err

    group = os.getpgid(served_model.process.pid)
    with caplog.at_level(logging.INFO, logger="qrdistill.llm.openai"):
        worker = threading.Thread(target=generate)
        worker.start()
        try:
            deadline = time.monotonic() + 120
            while cached(out / "cache.sqlite") < 1:
                assert worker.is_alive() and time.monotonic() < deadline, result
                time.sleep(0.02)
            os.killpg(group, signal.SIGSTOP)
            time.sleep(9)  # longer than request_timeout_s: the request in flight times out
        finally:
            os.killpg(group, signal.SIGCONT)
        worker.join(timeout=180)
    assert "error" not in result, result
    paths = read_jsonl_as(result["paths"], ReasoningPath)
    assert sorted(p.id for p in paths) == sorted(
        f"{q}::{s}::0" for q in ("q1", "q2") for s in cfg.styles
    )
    assert all(p.text.strip() for p in paths)
    retries = [r.getMessage() for r in caplog.records if "; retry 1/4" in r.getMessage()]
    assert retries and "APITimeoutError" in retries[0]
