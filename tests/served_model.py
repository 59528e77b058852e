"""Servers and fixtures shared by the teacher and quality tests (servers on 127.0.0.1 only).

- `ServedModel`: a real `transformers serve` process serving the packaged SmolLM2 folder.
- `CountingProxy`: forwards to a real server and records every request it passes on, so a test
  can count what the server was asked (resume must not recompute finished requests).
- `StubOpenAIServer`: a STUB with scripted replies, not a model. Only for faults a real server
  cannot be made to produce on demand: HTTP 429 with Retry-After, 5xx, a 401 that echoes the key,
  judge replies that are malformed in a chosen way.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedModel:
    def __init__(self, folder: Path, log_path: Path):
        self.folder = Path(folder)
        self.log_path = Path(log_path)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return str(self.folder)  # `transformers serve` with a pinned model expects its path as name

    def start(self, timeout_s: float = 180) -> ServedModel:
        command = [
            str(Path(sys.executable).parent / "transformers"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            str(self.folder),
        ]
        # One thread: test machines are small and shared, and OpenMP threads that spin-wait for a
        # busy core made each request several times slower there.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited ({self.process.returncode}): "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve not healthy after {timeout_s}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no chance to finish in-flight requests."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


_shared: ServedModel | None = None


def shared_served_model(log_dir: Path) -> ServedModel:
    """One served SmolLM2 per pytest process, however many test folders ask for it."""
    global _shared
    if _shared is None:
        from qrdistill.models import packaged_model_path

        _shared = ServedModel(
            packaged_model_path("smollm2-135m-instruct"), log_dir / "serve.log"
        ).start()
    return _shared


def stop_shared_served_model() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[dict] = []  # {"path", "body", "authorization"} per POST
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def record(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            self.requests.append(
                {
                    "path": handler.path,
                    "body": json.loads(body or b"{}"),
                    "authorization": handler.headers.get("Authorization"),
                }
            )

    def completions(self) -> list[dict]:
        with self.lock:
            return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class CountingProxy(_Recorder):
    """Passes every request on to the real server at `upstream_port` and records each POST."""

    def __init__(self, upstream_port: int):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self, body: bytes | None) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                self.send_response(response.status)
                self.send_header(
                    "Content-Type", response.getheader("Content-Type", "application/json")
                )
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.record(self, body)  # on arrival: a request cut off by a crash still counts
                self._forward(body)

        super().__init__(Handler)


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """`transformers serve` with the packaged SmolLM2, one per session for all test folders."""
    yield shared_served_model(tmp_path_factory.getbasetemp())
    stop_shared_served_model()


@pytest.fixture
def proxy(served_model):
    """A counting proxy in front of the served model: what the server was asked, one by one."""
    counting = CountingProxy(served_model.port)
    yield counting
    counting.close()


QUESTIONS = [
    ("q1", "Tom has 3 apples and buys 2 more. How many apples does he have now?", "5"),
    ("q2", "A box holds 4 pens. How many pens are in 3 boxes?", "12"),
]


@pytest.fixture
def examples_path(tmp_path):
    """Two GSM8K-style questions as Example records."""
    path = tmp_path / "examples.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": qid, "task": "gsm8k", "question": q, "gold": gold}) + "\n"
            for qid, q, gold in QUESTIONS
        )
    )
    return path


@pytest.fixture
def pauses(monkeypatch):
    """The delays the backend waits between retries, recorded instead of slept."""
    from qrdistill.llm import openai

    recorded: list[float] = []
    monkeypatch.setattr(openai, "pause", recorded.append)
    return recorded


def chat_reply(text: str, prompt_tokens: int = 10, completion_tokens: int = 5) -> dict:
    return {
        "id": "stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class StubOpenAIServer(_Recorder):
    """A STUB (not a model) answering POSTs from a script, in order.

    Each script entry is either a string (a 200 chat completion with that text) or a tuple
    (status, headers, body) for an error. When the script runs out, `default` is used.
    """

    def __init__(self, script: list, default: str | tuple = "Score: 5/10\nReason: stub"):
        stub = self
        self.script = list(script)
        self.default = default

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.record(self, body)
                with stub.lock:
                    entry = stub.script.pop(0) if stub.script else stub.default
                if isinstance(entry, str):
                    status, headers, payload = 200, {}, chat_reply(entry)
                else:
                    status, headers, payload = entry
                    if callable(payload):
                        payload = payload(self)
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


def openai_backend(base_url: str, model: str = "stub", **overrides):
    """An openai BackendConfig for tests: short completions, no key, quick retries."""
    from qrdistill.llm import BackendConfig

    settings = dict(
        kind="openai",
        model=model,
        base_urls=[base_url],
        api_key_env=None,
        max_tokens=24,
        concurrency=2,
        max_retries=1,
        backoff_base_s=0.05,
        request_timeout_s=120,
    )
    return BackendConfig(**{**settings, **overrides})


def stand_in_teacher(stub: StubOpenAIServer, train_files: list[Path]):
    """A STAND-IN teacher's replies, scripted by what each prompt asks (a tiny random model is
    never right and never writes a consistency verdict, so nothing would reach RevThink's
    training). Forward: the gold answer of the question it finds in the prompt, among the
    questions of `train_files` (those the data stage has written when asked); a backward
    question of its own per question; a backward reasoning; always "consistent"."""

    def reply(_handler) -> dict:
        prompt = stub.requests[-1]["body"]["messages"][0]["content"]
        if prompt.startswith("Stand-in backward question"):
            return chat_reply("Stand-in backward reasoning: the fact follows.")
        if prompt.startswith("Original question:"):
            return chat_reply("Stand-in check.\nVerdict: consistent")
        examples = [
            json.loads(line)
            for path in train_files
            if path.exists()  # a later task's, not written yet
            for line in path.read_text().splitlines()
        ]
        index, gold = next(
            (i, e["gold"]) for i, e in enumerate(examples) if e["question"] in prompt
        )
        if "Write its backward question" in prompt:
            return chat_reply(f"Stand-in backward question {index}: which fact gives {gold}?")
        return chat_reply(f"Stand-in forward reasoning. The best answer is {gold}.")

    return reply
