"""RawStubServer: a STUB OpenAI-compatible endpoint (not a model) that answers POSTs with raw,
scripted bytes. Only for answers a real server cannot be made to give: a 200 whose body is not
JSON, has no choices, is text/plain, carries an error or a null completion, a Retry-After of
minutes, a body trickled byte by byte, a request that never gets an answer.

It also stands in for servers that cannot run here: those with a reasoning parser (vLLM
`--reasoning-parser`, SGLang, DeepSeek's and OpenAI's APIs), whose answers carry the thinking in
`reasoning_content` (or `reasoning`), streamed as deltas of either kind, and usage with
`completion_tokens_details.reasoning_tokens` (`Reply.reasoning`, `Reply.stream`)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/json"
    headers: dict = field(default_factory=dict)
    trickle_s: float = 0.0  # seconds between bytes of the body
    hang_s: float = 0.0  # wait this long before answering at all

    @classmethod
    def completion(
        cls, text: str | None, *, message: dict | None = None, usage: dict | None = None, **kw
    ) -> Reply:
        """A whole chat completion whose message says `text`, plus any `message` fields."""
        payload = {
            "id": "stub",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text, **(message or {})},
                }
            ],
            "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
        return cls(json.dumps(payload).encode(), **kw)

    @classmethod
    def reasoning(
        cls, content: str | None, thinking: str, *, field: str = "reasoning_content", **kw
    ) -> Reply:
        """A reasoning parser's answer: the thinking in `field`, the reply in `content`."""
        return cls.completion(content, message={field: thinking}, **kw)

    @classmethod
    def stream(cls, deltas: list[dict], usage: dict | None = None, cut: bool = False, **kw):
        """A streamed answer as server-sent events: one chunk per delta (e.g. {"content": ...}
        or {"reasoning_content": ...}), a last chunk with the finish reason, one with `usage`,
        then `data: [DONE]`; with `cut`, the deltas only (an answer cut off mid-way)."""

        def event(choices: list, **extra) -> bytes:
            chunk = {"id": "stub", "object": "chat.completion.chunk", "created": 0}
            return b"data: " + json.dumps({**chunk, "choices": choices, **extra}).encode() + b"\n\n"

        body = event([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
        for delta in deltas:
            body += event([{"index": 0, "delta": delta, "finish_reason": None}])
        if not cut:
            body += event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if usage is not None:
                body += event([], usage=usage)
            body += b"data: [DONE]\n\n"
        return cls(body, content_type="text/event-stream", **kw)


class RawStubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: list[Reply], default: Reply | None = None):
        self.script = list(script)
        self.default = default or Reply.completion("The answer is \\boxed{5}.")
        self.posts = 0
        self.bodies: list[dict] = []  # the JSON of every POST, in order
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    server.posts += 1
                    server.bodies.append(json.loads(body or b"{}"))
                    reply = server.script.pop(0) if server.script else server.default
                try:
                    if reply.hang_s:
                        time.sleep(reply.hang_s)
                    self.send_response(reply.status)
                    if reply.content_type:
                        self.send_header("Content-Type", reply.content_type)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.trickle_s:
                        for i in range(len(reply.body)):
                            self.wfile.write(reply.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle_s)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
