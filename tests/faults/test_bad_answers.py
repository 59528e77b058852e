"""The backend survives bad answers (issue 10): every malformed 200 is retried, then fails with a
one-line BackendError naming the endpoint and what was wrong; an empty or null completion is a
failed attempt, never a cached path; Retry-After is capped; the deadline covers the whole request;
Ctrl-C returns at once. These answers come from RawStubServer, a STUB: no real server gives them
on demand."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from fault_tools import sigint_as_in_a_terminal, subprocess_env
from raw_stub import RawStubServer, Reply

from qrdistill.errors import BackendError
from qrdistill.llm.openai import OpenAIBackend
from qrdistill.llm.request import make_request
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.utils.config import dump_yaml
from served_model import openai_backend

BAD = {
    "invalid JSON": (Reply(b'{"choices": [{"message": {"content": "hi"'), "is not valid JSON"),
    "empty choices": (Reply(b'{"id": "x", "choices": []}'), "HTTP 200 with empty choices"),
    "text/plain": (
        Reply(b"The answer is 5.", content_type="text/plain"),
        "Content-Type 'text/plain', not JSON",
    ),
    "error body": (
        Reply(b'{"error": {"message": "model overloaded"}}'),
        "carrying an error: model overloaded",
    ),
    "content null": (Reply.completion(None), "an empty completion (content null"),
    "content empty": (Reply.completion(""), "an empty completion (content ''"),
    "JSON list": (Reply(b"[1, 2]"), "JSON is a list, not a chat completion object"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_stub_malformed_answer_is_retried_then_succeeds(kind, pauses):
    stub = RawStubServer([BAD[kind][0]])
    try:
        backend = OpenAIBackend(openai_backend(stub.base_url, max_retries=2))
        generation = backend.complete(make_request(backend.cfg, "2+3?", 0, "question q1"))
    finally:
        stub.close()
    assert (generation.text, generation.prompt_tokens, generation.completion_tokens) == (
        "The answer is \\boxed{5}.",
        7,
        3,
    )
    assert stub.posts == 2 and len(pauses) == 1


@pytest.mark.parametrize("kind", list(BAD))
def test_stub_malformed_answer_fails_with_one_line_naming_endpoint_and_fault(kind, pauses):
    reply, what = BAD[kind]
    stub = RawStubServer([], default=reply)
    try:
        backend = OpenAIBackend(openai_backend(stub.base_url, max_retries=2))
        with pytest.raises(BackendError) as err:
            backend.complete(make_request(backend.cfg, "2+3?", 0, "question q1"))
    finally:
        stub.close()
    message = str(err.value)
    assert message.startswith(
        f"question q1: failed after 3 attempt(s); last error from {stub.base_url}"
    )
    assert what in message and "\n" not in message
    assert stub.posts == 3 and len(pauses) == 2


def test_stub_null_completion_is_never_cached_as_a_path(examples_path, tmp_path, pauses):
    stub = RawStubServer([], default=Reply.completion(None))
    try:
        cfg = GenerateConfig(
            backend=openai_backend(stub.base_url, concurrency=1, max_retries=1),
            styles=["vanilla"],
            show_progress=False,
        )
        with pytest.raises(BackendError, match="an empty completion"):
            generate_paths(cfg, examples_path, tmp_path / "gen")
    finally:
        stub.close()
    cache = tmp_path / "gen" / "cache.sqlite"
    if cache.exists():
        with sqlite3.connect(cache) as conn:
            assert conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 0
    assert not (tmp_path / "gen" / "paths.jsonl").exists()


def test_stub_retry_after_is_capped_by_backoff_max(pauses):
    stub = RawStubServer(
        [Reply(b'{"error": {"message": "slow down"}}', status=429, headers={"Retry-After": "600"})]
    )
    try:
        backend = OpenAIBackend(openai_backend(stub.base_url, max_retries=1, backoff_max_s=1))
        generation = backend.complete(make_request(backend.cfg, "2+3?", 0, "question q1"))
    finally:
        stub.close()
    assert pauses == [1.0] and generation.text == "The answer is \\boxed{5}."


def test_stub_trickled_body_hits_the_whole_request_deadline(pauses):
    # 1 byte per 50 ms: each read is quick, the whole answer would take ~12 s.
    stub = RawStubServer([], default=Reply.completion("The answer is \\boxed{5}.", trickle_s=0.05))
    try:
        backend = OpenAIBackend(openai_backend(stub.base_url, max_retries=1, request_timeout_s=1.0))
        started = time.monotonic()
        with pytest.raises(BackendError) as err:
            backend.complete(make_request(backend.cfg, "2+3?", 0, "question q1"))
        took = time.monotonic() - started
    finally:
        stub.close()
    assert "no complete answer within request_timeout_s=1s (the body was still arriving" in str(
        err.value
    )
    assert 2.0 <= took < 4.0  # two attempts of about 1 s each
    assert stub.posts == 2


def test_stub_ctrl_c_returns_at_once_while_requests_hang(examples_path, tmp_path):
    stub = RawStubServer([], default=Reply.completion("late", hang_s=60))
    config = tmp_path / "gen.yaml"
    config.write_text(
        dump_yaml(
            GenerateConfig(
                backend=openai_backend(stub.base_url, concurrency=2, request_timeout_s=120),
                styles=["vanilla"],
                show_progress=False,
            )
        )
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qrdistill.teacher",
            str(config),
            str(examples_path),
            str(tmp_path / "gen"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        preexec_fn=sigint_as_in_a_terminal,
    )
    try:
        deadline = time.monotonic() + 60
        while stub.posts < 2:  # both requests in flight, neither will be answered for a minute
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        process.kill()
        stub.close()
    assert process.returncode == 130 and took < 3.0, (took, stderr)
    assert "interrupted: rerun the same command" in stderr and "Traceback" not in stderr
