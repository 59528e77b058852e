"""Faults: a crash of the generate process, a server down or killed, timeouts, 429/5xx, bad keys.

Real servers produce every fault they can (down, killed, slow); the STUB server is used only for
HTTP statuses a real `transformers serve` never sends on demand (429 + Retry-After, 503, 401).
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from qrdistill.errors import BackendError
from qrdistill.llm import openai
from qrdistill.llm.request import make_request
from qrdistill.records import Example, ReasoningPath
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.teacher.generate import plan_jobs
from qrdistill.utils.config import dump_yaml
from qrdistill.utils.io import read_jsonl_as
from served_model import ServedModel, StubOpenAIServer, free_port, openai_backend


def start_generate(cfg: GenerateConfig, examples_path, out_dir) -> subprocess.Popen:
    """`python -m qrdistill.teacher` in its own process, as the CLI would run it."""
    config_path = out_dir.parent / f"{out_dir.name}.yaml"
    config_path.write_text(dump_yaml(cfg))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qrdistill.teacher",
            str(config_path),
            str(examples_path),
            str(out_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cached_keys(out_dir) -> set[str]:
    path = out_dir / "cache.sqlite"
    if not path.exists():
        return set()
    with sqlite3.connect(path) as conn:
        try:
            return {key for (key,) in conn.execute("SELECT key FROM completions")}
        except sqlite3.OperationalError:  # the table is being created right now
            return set()


def wait_until_cached(
    out_dir, count: int, process: subprocess.Popen, timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while len(cached_keys(out_dir)) < count:
        assert process.poll() is None, f"generate ended early: {process.communicate()}"
        assert time.monotonic() < deadline, "generate made no progress"
        time.sleep(0.05)


def test_server_down_at_start_fails_clearly_and_writes_nothing(examples_path, tmp_path):
    cfg = GenerateConfig(
        backend=openai_backend(f"http://127.0.0.1:{free_port()}/v1"), show_progress=False
    )
    process = start_generate(cfg, examples_path, tmp_path / "gen")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "error: cannot reach the openai backend at http://127.0.0.1:" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "gen").exists()


@pytest.mark.server
def test_sigkill_mid_run_then_rerun_recomputes_nothing_finished(
    served_model, proxy, examples_path, tmp_path
):
    cfg = GenerateConfig(
        backend=openai_backend(proxy.base_url, served_model.model, concurrency=1, max_tokens=16),
        styles=["vanilla", "program", "backward"],
        show_progress=False,
    )
    out = tmp_path / "gen"
    process = start_generate(cfg, examples_path, out)
    wait_until_cached(out, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "paths.jsonl").exists()  # final files only appear complete
    finished = cached_keys(out)
    asked_before = len(proxy.completions())
    assert 2 <= len(finished) < 6

    paths = read_jsonl_as(generate_paths(cfg, examples_path, out), ReasoningPath)

    ids = [(p.question_id, p.style, p.sample_index) for p in paths]
    assert sorted(ids) == sorted({(q, s, 0) for q in ("q1", "q2") for s in cfg.styles})
    # The rerun asked the server for exactly the requests that had not finished, by their seeds.
    seed_of = {
        job.request.key: job.request.seed
        for job in plan_jobs(cfg, read_jsonl_as(examples_path, Example))
    }
    rerun = proxy.completions()[asked_before:]
    assert sorted(body["seed"] for body in rerun) == sorted(
        seed for key, seed in seed_of.items() if key not in finished
    )


@pytest.mark.server
def test_server_killed_mid_run_names_the_request_and_the_run_resumes(
    served_model, proxy, examples_path, tmp_path
):
    doomed = ServedModel(served_model.folder, tmp_path / "doomed.log").start()
    backend = openai_backend(
        doomed.base_url, doomed.model, concurrency=1, max_tokens=16, max_retries=1
    )
    cfg = GenerateConfig(backend=backend, styles=["vanilla", "program"], show_progress=False)
    out = tmp_path / "gen"
    try:
        process = start_generate(cfg, examples_path, out)
        wait_until_cached(out, 1, process)
        doomed.kill()
        _, stderr = process.communicate(timeout=120)
    finally:
        doomed.stop()
    assert process.returncode == 2
    assert re.search(
        r"error: question q\d, style \w+, sample 0: failed after 2 attempt\(s\); "
        r"last error from http://127\.0\.0\.1:\d+/v1/?: APIConnectionError",
        stderr,
    ), stderr
    assert not (out / "paths.jsonl").exists()
    finished = cached_keys(out)

    # Resume against another server with the same model: only the unfinished requests are asked.
    cfg.backend = backend.model_copy(update={"base_urls": [proxy.base_url]})
    paths = read_jsonl_as(generate_paths(cfg, examples_path, out), ReasoningPath)
    assert len(proxy.completions()) == 4 - len(finished)
    assert sorted(p.id for p in paths) == sorted(
        {f"{q}::{s}::0" for q in ("q1", "q2") for s in cfg.styles}
    )


@pytest.mark.server
def test_request_timeout_is_retried_then_named(served_model, examples_path, tmp_path, pauses):
    backend = openai_backend(
        served_model.base_url,
        served_model.model,
        request_timeout_s=0.2,
        max_retries=1,
        backoff_base_s=0.4,
        concurrency=1,
        max_tokens=16,
    )
    cfg = GenerateConfig(backend=backend, styles=["vanilla"], show_progress=False)
    with pytest.raises(
        BackendError,
        match=r"^question q1, style vanilla, sample 0: failed after 2 "
        r"attempt\(s\); .*APITimeoutError",
    ):
        generate_paths(cfg, examples_path, tmp_path / "gen")
    assert len(pauses) == 1 and 0.2 <= pauses[0] <= 0.4  # half the ceiling plus jitter
    assert not (tmp_path / "gen").exists()


def test_stub_429_retry_after_is_honoured(examples_path, tmp_path, pauses):
    stub = StubOpenAIServer(
        [
            (429, {"Retry-After": "3"}, {"error": {"message": "slow down"}}),
            "So 3 + 2 = 5. The answer is \\boxed{5}.",
        ],
        default="The answer is \\boxed{12}.",
    )
    try:
        cfg = GenerateConfig(
            backend=openai_backend(stub.base_url, concurrency=1),
            styles=["vanilla"],
            show_progress=False,
        )
        paths = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)
    finally:
        stub.close()
    assert pauses == [3.0]
    assert [(p.question_id, p.answer, p.correct) for p in paths] == [
        ("q1", "5", True),
        ("q2", "12", True),
    ]
    assert len(stub.completions()) == 3


def test_stub_5xx_backs_off_with_jitter_then_names_the_request(examples_path, tmp_path, pauses):
    stub = StubOpenAIServer([], default=(503, {}, {"error": {"message": "overloaded"}}))
    try:
        backend = openai_backend(
            stub.base_url, concurrency=1, max_retries=3, backoff_base_s=1.0, backoff_max_s=3.0
        )
        cfg = GenerateConfig(backend=backend, styles=["program"], show_progress=False)
        with pytest.raises(
            BackendError,
            match=r"^question q1, style program, sample 0: failed after 4 "
            r"attempt\(s\); .*HTTP 503",
        ):
            generate_paths(cfg, examples_path, tmp_path / "gen")
    finally:
        stub.close()
    ceilings = [1.0, 2.0, 3.0]  # doubling, capped at backoff_max_s
    assert len(pauses) == 3
    for pause, ceiling in zip(pauses, ceilings):
        assert ceiling / 2 <= pause <= ceiling
    assert len(stub.completions()) == 4
    assert not (tmp_path / "gen").exists()


def test_stub_401_is_not_retried_and_the_key_stays_secret(
    examples_path, tmp_path, monkeypatch, pauses
):
    secret = "sk-live-never-show-me-777"
    monkeypatch.setenv("QRD_STUB_KEY", secret)

    def echo_key(handler):  # a server that quotes the key it was sent back in its error
        return {"error": {"message": f"bad key {handler.headers['Authorization']}"}}

    stub = StubOpenAIServer([], default=(401, {}, echo_key))
    try:
        cfg = GenerateConfig(
            backend=openai_backend(stub.base_url, api_key_env="QRD_STUB_KEY"),
            styles=["vanilla"],
            show_progress=False,
        )
        with pytest.raises(BackendError, match="refused the request") as err:
            generate_paths(cfg, examples_path, tmp_path / "gen")
    finally:
        stub.close()
    assert stub.requests[0]["authorization"] == f"Bearer {secret}"
    assert secret not in str(err.value) and "bad key Bearer ***" in str(err.value)
    assert pauses == []


def test_stub_error_after_the_run_was_cancelled_is_not_retried(pauses, monkeypatch):
    """Once a run has failed elsewhere, a request still in flight that breaks (its server closed)
    stops at once: no retry logged, no pause, nothing more asked of the server."""
    stub = StubOpenAIServer([], default=(503, {}, {"error": {"message": "going away"}}))
    cancelled = threading.Event()
    cancelled.set()
    monkeypatch.setattr(openai._worker, "cancel", cancelled, raising=False)
    try:
        backend = openai.OpenAIBackend(openai_backend(stub.base_url, max_retries=3))
        with pytest.raises(openai.Cancelled):
            backend.complete(make_request(backend.cfg, "2+3?", 0, "question q1"))
    finally:
        stub.close()
    assert pauses == [] and len(stub.completions()) == 1


def test_stub_requests_are_spread_over_base_urls_and_a_dead_one_is_left_out(
    examples_path, tmp_path, pauses
):
    first, second = (
        StubOpenAIServer([], default="\\boxed{5}"),
        StubOpenAIServer([], default="\\boxed{5}"),
    )
    dead = f"http://127.0.0.1:{free_port()}/v1"
    try:
        backend = openai_backend(first.base_url, concurrency=1, max_retries=2)
        backend.base_urls = [first.base_url, second.base_url]
        cfg = GenerateConfig(backend=backend, styles=["vanilla", "program"], show_progress=False)
        generate_paths(cfg, examples_path, tmp_path / "balanced")
        assert (len(first.completions()), len(second.completions())) == (2, 2)

        backend.base_urls = [first.base_url, dead]
        paths = read_jsonl_as(
            generate_paths(cfg, examples_path, tmp_path / "one_dead"), ReasoningPath
        )
    finally:
        first.close()
        second.close()
    assert len(paths) == 4 and len(first.completions()) == 2 + 4
    assert pauses == []  # the dead endpoint was found at the start and never asked
