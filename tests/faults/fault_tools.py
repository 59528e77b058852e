"""Helpers of the fault suite: the environment of a `python -m qrdistill` child, the one-line
error check, and Ctrl-C of a real subprocess with its continue command."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def subprocess_env() -> dict:
    """The environment for a `python -m qrdistill` child: this checkout's sources first."""
    import os

    import qrdistill

    src = str(Path(qrdistill.__file__).resolve().parents[1])
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }


def assert_one_line_error(code: int, lines: list[str], *fragments: str) -> str:
    """Exit status 2; the error is one line, the last on stderr, starting with 'error:' and holding
    `fragments` (lines before it are the stages' progress headers); no traceback anywhere."""
    assert code == 2, (code, lines)
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], lines
    assert not any("Traceback" in line for line in lines), lines
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
    return lines[-1]


def sigint_as_in_a_terminal() -> None:
    """`preexec_fn` for a child the test will Ctrl-C. A job started in the background (`cmd &`,
    nohup, some CI runners) inherits SIGINT ignored, and Python then raises no KeyboardInterrupt
    (POSIX: a background job is not to be interrupted). A user's Ctrl-C reaches a foreground
    process, whose SIGINT is the default: start the child as that one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(args: list[str], ready: Callable[[], bool], within_s: float = 240) -> str:
    """Run `python -m qrdistill ARGS`, send it SIGINT (Ctrl-C) as soon as `ready()` holds, check
    that it exits 130 without a traceback, and return the command it printed to continue."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qrdistill", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        preexec_fn=sigint_as_in_a_terminal,
    )
    try:
        deadline = time.monotonic() + within_s
        while not ready():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = next(x for x in stderr.splitlines() if x.startswith("interrupted:"))
    return line.split("to continue: ", 1)[1]


def run_continue_command(command: str) -> subprocess.CompletedProcess:
    """Run a printed `qrdistill ...` continue command to the end; it must succeed."""
    continued = shlex.split(command)
    assert continued[0] == "qrdistill"
    result = subprocess.run(
        [sys.executable, "-m", "qrdistill", *continued[1:]],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def served_backend(proxy, served_model, **overrides) -> dict:
    """A greedy, 8-token OpenAI backend on the real served model, through the counting proxy."""
    return {
        "kind": "openai",
        "model": served_model.model,
        "base_urls": [proxy.base_url],
        "api_key_env": None,
        "temperature": 0.0,
        "max_tokens": 8,
        "concurrency": 1,
        **overrides,
    }
