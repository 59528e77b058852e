"""One writer per run directory: a second `qrdistill` on the same run directory is refused with a
one-line error naming the holder (exit 2); a lock left by a dead process is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from fault_tools import subprocess_env
from test_pipeline import tiny_config

from qrdistill.errors import LockHeld
from qrdistill.utils.lock import RunLock


def test_lock_names_its_holder_and_a_second_taker_is_refused(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(
            json.dumps(
                {
                    "pid": sleeper.pid,
                    "host": socket.gethostname(),
                    "started": "2026-01-01T00:00:00Z",
                }
            )
        )
        with pytest.raises(LockHeld) as err:
            RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert str(err.value) == (
        f"{tmp_path}: this run directory is in use by process {sleeper.pid} on "
        f"{socket.gethostname()} (started 2026-01-01T00:00:00Z); wait for it to "
        f"finish, or if that process is gone, remove {tmp_path / '.lock'}"
    )


def test_stale_lock_of_a_dead_process_is_taken_over_and_logged(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(
        json.dumps(
            {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z"}
        )
    )
    with caplog.at_level(logging.WARNING, logger="qrdistill.utils.lock"):
        with RunLock(tmp_path):
            owner = json.loads((tmp_path / ".lock").read_text())
            assert owner["pid"] == os.getpid()
            with pytest.raises(LockHeld):  # held by us now: a second taker is refused
                RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()  # released on exit
    assert f"took over a stale lock of process {dead.pid}" in caplog.text


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "x"}))
    with pytest.raises(LockHeld, match="in use by process 1 on elsewhere"):
        RunLock(tmp_path).acquire()


def test_two_generate_processes_on_one_run_directory_one_is_refused(tmp_path, tiny_students):
    config = tiny_config(tmp_path, tiny_students)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "qrdistill", "generate", str(config)]
    env = subprocess_env()
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not (run / ".lock").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: {run}: this run directory is in use by process {first.pid} on "
        f"{socket.gethostname()} (started {lines[0].split('(started ')[1].split(')')[0]}); "
        f"wait for it to finish, or if that process is gone, remove {run / '.lock'}"
    ]
    # The refused run wrote nothing; the first one's output is whole and its lock is gone.
    paths = [
        json.loads(line) for line in (run / "generate" / "paths.jsonl").read_text().splitlines()
    ]
    assert len(paths) == 8 and not (run / ".lock").exists()
