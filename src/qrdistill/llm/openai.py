"""The openai backend: chat completions from OpenAI-compatible servers (vLLM, `transformers
serve`, hosted APIs) through the openai client, with load balancing over `base_urls`, retries
with backoff, a whole-request deadline, streaming and reasoning-model replies. Takes a list of
`Request`s and yields `(request, Generation)` pairs as they finish, like the local backends
(backends.py).
"""

from __future__ import annotations

import collections
import email.utils
import itertools
import json
import logging
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

from qrdistill.errors import BackendError
from qrdistill.llm.config import BackendConfig
from qrdistill.llm.request import Request, never_stop
from qrdistill.records import Generation

log = logging.getLogger(__name__)
# The HTTP library under the openai client logs every request at INFO, which buries the progress
# bar of a run with thousands of requests; its warnings and errors still show.
for _name in ("httpx", "httpx2"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# Sent when no key is configured: the client library insists on one, local servers ignore it.
NO_KEY = "no-key-configured"
RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))


class BadAnswer(Exception):
    """An HTTP 200 that is not a usable chat completion (not JSON, no choices, an error body, an
    empty or null completion), or an answer not complete within the whole-request deadline.
    Retried like a 5xx; the message says what was wrong."""


class Cancelled(Exception):
    """The run was interrupted (Ctrl-C) or failed elsewhere: stop this request's retries."""


class SeveralRefused(Exception):
    """A request for several choices (`n` > 1) was refused with a 4xx: perhaps the server does
    not take `n`. The caller asks for the samples one by one, which fails properly if not."""


# The cancel event of the run a worker thread belongs to, read by `pause` and the body reader.
_worker = threading.local()


class OpenAIBackend:
    """Chat completions from one or more OpenAI-compatible endpoints, `concurrency` at a time.

    Every attempt takes the next of the reachable `base_urls` in turn, so a retry usually lands
    on another endpoint and one endpoint going down costs retries, not the run. Timeouts,
    connection errors, 408/409/429, 5xx and malformed answers (a 200 that is not JSON, has no
    choices, carries an error, or holds an empty or null completion) are retried with exponential
    backoff and jitter (or after the server's Retry-After, capped at `backoff_max_s`); other errors
    (bad request, wrong key, unknown model) fail at once. `request_timeout_s` is a deadline for the
    whole request, body included (a server trickling its answer cannot hold a request longer).
    Requests run on daemon threads, so an interrupt (Ctrl-C) returns at once, without waiting for
    what is in flight.
    """

    def __init__(self, cfg: BackendConfig):
        import openai

        self.cfg = cfg
        self._key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        # The library's own retries are off: ours honour Retry-After and name the request.
        self._clients = [
            openai.OpenAI(
                base_url=url,
                api_key=self._key or NO_KEY,
                max_retries=0,
                timeout=cfg.request_timeout_s,
            )
            for url in self._reachable_urls()
        ]
        self._next_client = itertools.cycle(range(len(self._clients)))
        self._lock = threading.Lock()
        # Whether the server answers `n` choices: unknown until the first request for several.
        self._takes_n: bool | None = None if cfg.samples_in_one_request else False

    def _reachable_urls(self) -> list[str]:
        """The endpoints that answer now; an error when none does, before anything is written.
        Any HTTP status, even an error, proves a server is there."""
        up, down = [], []
        for url in self.cfg.base_urls:
            try:
                # A connection check, not a generation: the request timeout does not apply.
                urllib.request.urlopen(url, timeout=10).close()
            except urllib.error.HTTPError:
                pass
            except (urllib.error.URLError, OSError) as err:
                down.append(f"{url} ({getattr(err, 'reason', err)})")
                continue
            up.append(url)
        if not up:
            raise BackendError(
                f"cannot reach the openai backend at {'; '.join(down)}; "
                "is the server running and is base_urls right?"
            )
        for entry in down:
            log.warning("endpoint %s is not reachable; using the others for this run", entry)
        return up

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _backoff_s(self, attempt: int, err: Exception) -> float:
        retry_after = _retry_after_s(err)
        if retry_after is not None:
            return min(retry_after, self.cfg.backoff_max_s)  # a server cannot stall the run
        ceiling = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt)
        return ceiling / 2 + random.uniform(
            0, ceiling / 2
        )  # jitter spreads out synchronized retries

    def complete(self, request: Request) -> Generation:
        return self.complete_n(request, 1)[0]

    def complete_n(self, request: Request, n: int) -> list[Generation]:
        """`n` choices for one prompt in one request (retried as a whole); a server that ignores
        `n` answers fewer, which the caller makes up for."""
        import openai

        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            with self._lock:
                client = self._clients[next(self._next_client)]
            try:
                return self._attempt(client, request, n)
            except (
                openai.APITimeoutError,
                openai.APIConnectionError,
                openai.APIStatusError,
                BadAnswer,
            ) as err:
                # A run that already failed or was interrupted closes its connections, which
                # breaks this request: that is no fault to log or retry.
                _check_cancelled()
                status = getattr(err, "status_code", None)
                reason = self._scrub(
                    f"{type(err).__name__}" + (f" HTTP {status}" if status else "") + f": {err}"
                )
                reason = " ".join(reason.split())  # one line, whatever the server wrote
                if status is not None and status not in RETRYABLE_STATUS:
                    if n > 1 and 400 <= status < 500:
                        raise SeveralRefused(reason) from None
                    raise BackendError(
                        f"{request.label}: {client.base_url} refused the request ({reason})"
                    ) from None
                if attempt + 1 == attempts:
                    raise BackendError(
                        f"{request.label}: failed after {attempts} attempt(s); "
                        f"last error from {client.base_url}: {reason}"
                    ) from None
                delay = self._backoff_s(attempt, err)
                log.info(
                    "%s: %s; retry %d/%d in %.1fs",
                    request.label,
                    reason,
                    attempt + 1,
                    self.cfg.max_retries,
                    delay,
                )
                pause(delay)
                _check_cancelled()
                continue
        raise AssertionError("unreachable")  # the loop returns or raises

    def _attempt(self, client, request: Request, n: int = 1) -> list[Generation]:
        """One request to one endpoint: the answer, checked, within the whole-request deadline."""
        try:  # the HTTP library under the openai client (httpx2 in recent releases)
            import httpx2 as httpx
        except ImportError:
            import httpx

        deadline = time.monotonic() + self.cfg.request_timeout_s
        with client.chat.completions.with_streaming_response.create(
            model=self.cfg.model,
            messages=[{"role": "user", "content": request.prompt}],
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            **{self.cfg.max_tokens_param: self.cfg.max_tokens},
            **({"n": n} if n > 1 else {}),
            **({"seed": request.seed} if request.seed is not None else {}),
            **({"response_format": self.cfg.response_format} if self.cfg.response_format else {}),
            **(
                {"reasoning_effort": self.cfg.reasoning_effort} if self.cfg.reasoning_effort else {}
            ),
            **(
                {"stream": True, "stream_options": {"include_usage": True}}
                if self.cfg.stream
                else {}
            ),
            **({"extra_body": self.cfg.extra_body} if self.cfg.extra_body else {}),
        ) as response:
            body = bytearray()
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    _check_cancelled()
                    if time.monotonic() > deadline:
                        raise BadAnswer(
                            f"no complete answer within request_timeout_s="
                            f"{self.cfg.request_timeout_s:g}s (the body was still arriving, "
                            f"{len(body)} bytes so far)"
                        )
            except httpx.TimeoutException:
                raise BadAnswer(
                    f"the body stopped arriving for request_timeout_s="
                    f"{self.cfg.request_timeout_s:g}s ({len(body)} bytes so far)"
                ) from None
            except httpx.TransportError as err:
                raise BadAnswer(
                    f"the connection broke while the answer arrived ({type(err).__name__}: "
                    f"{err}; {len(body)} bytes so far)"
                ) from None
            content_type = response.headers.get("content-type", "")
        return parse_completion(bytes(body), content_type)[:n]

    def _units(self, requests: list[Request]) -> Iterator[list[Request]]:
        """What one worker asks for: all samples of one prompt (consecutive requests with the same
        prompt) in one request with `n`, until the server is seen not to take `n`; then one
        request per sample."""
        for _, group in itertools.groupby(requests, key=lambda r: r.prompt):
            samples = list(group)
            yield from [samples] if self._takes_n is not False else [[r] for r in samples]

    def _complete_unit(self, unit: list[Request]) -> list[Generation]:
        """The completions of a unit's first requests: all of them, or fewer when the server
        answers fewer choices than asked (or refuses `n`); `run` asks for the rest one by one."""
        if len(unit) == 1:
            return [self.complete(unit[0])]
        try:
            generations = self.complete_n(unit[0], len(unit))
        except SeveralRefused as err:
            generations = []
            log.info(
                "%s: n=%d refused (%s); asking one sample at a time", unit[0].label, len(unit), err
            )
        takes_n = len(generations) >= len(unit)
        if self._takes_n is None:
            log.info(
                "the server %s `n` (asked for %d choices, got %d)%s",
                "takes" if takes_n else "does not take",
                len(unit),
                len(generations),
                "" if takes_n else "; each further sample is its own request",
            )
        self._takes_n = takes_n
        return generations

    def run(
        self, requests: list[Request], stop: Callable[[], bool] = never_stop
    ) -> Iterator[tuple[Request, Generation]]:
        """Yield results as they finish. At most `concurrency` units (a request, or the samples of
        one prompt asked for together) are in flight, so a failure or an interrupt leaves little
        unfinished work behind; they run on daemon threads that a failure or an interrupt cancels
        (they stop at their next retry or chunk, and never hold up the process's exit).

        Only this (the caller's) thread starts units, each after the caller has counted every
        result of the unit its worker did before, and only while `stop()` is false; the samples
        a server did not answer with `n` go back here as units of one. So once `stop()` is true
        no further request starts and at most `concurrency` requests are still unfinished: spend
        passes a cap by at most that many requests, however many samples a prompt has."""
        pending = self._units(requests)
        unanswered: collections.deque[list[Request]] = collections.deque()
        finished: queue.Queue = queue.Queue()
        cancel = threading.Event()
        unit_done = object()

        def work(unit: list[Request]) -> None:
            _worker.cancel = cancel
            try:
                generations = self._complete_unit(unit)
                for request, generation in zip(unit, generations):
                    finished.put((request, generation, None))
                finished.put((unit[len(generations) :], unit_done, None))
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                finished.put((None, None, err))

        def start_next() -> bool:
            if stop():
                return False
            unit = unanswered.popleft() if unanswered else next(pending, None)
            if unit is None:
                return False
            threading.Thread(target=work, args=(unit,), daemon=True, name="teacher").start()
            return True

        in_flight = 0
        try:
            while True:
                while in_flight < self.cfg.concurrency and start_next():
                    in_flight += 1
                if not in_flight:
                    break
                try:
                    request, generation, error = finished.get(timeout=0.2)
                except queue.Empty:
                    continue
                if error is not None:
                    raise error
                if generation is not unit_done:
                    yield request, generation
                    continue
                unanswered.extend([r] for r in request)  # a done unit carries its unanswered
                in_flight -= 1
        finally:
            cancel.set()


def parse_completion(body: bytes, content_type: str) -> list[Generation]:
    """The choices of a chat completion from a 200's body (one JSON object, or the server-sent
    events of a streamed answer), each with its share of the usage; BadAnswer says what is wrong.

    Each choice keeps its reply (`message.content`) and the reasoning field a server's
    reasoning parser fills (`reasoning_content`, or `reasoning`), as sent; `qrdistill.llm.
    thinking` separates them. The server reports usage for the whole request: with several
    choices (`n`), the prompt is billed once and split evenly between them, and the completion
    (and reasoning) tokens in proportion to each choice's length, so the choices' counts add up
    to exactly what was billed."""
    if "event-stream" in content_type.lower():
        payload = _assemble_stream(body)
    elif "json" in content_type.lower():
        payload = _json_body(body)
    else:
        raise BadAnswer(
            f"HTTP 200 with Content-Type {content_type or 'none'!r}, not JSON (nor server-sent "
            f"events; body starts {body[:60]!r})"
        )
    _raise_carried_error(payload)
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadAnswer(f"HTTP 200 with {'empty' if choices == [] else 'no'} choices")
    parts = [_choice_parts(choice) for choice in choices]
    prompt_tokens, completion_tokens, reasoning_tokens = _usage_counts(payload.get("usage"))
    lengths = [len(text) + len(thinking) for text, thinking in parts]
    thinking_lengths = [len(thinking) for _, thinking in parts]
    return [
        Generation(
            text=text,
            prompt_tokens=p,
            completion_tokens=c,
            thinking=thinking,
            reasoning_tokens=r,
        )
        for (text, thinking), p, c, r in zip(
            parts,
            _split(prompt_tokens, [1] * len(parts)),
            _split(completion_tokens, lengths),
            _split(reasoning_tokens, thinking_lengths),
        )
    ]


def _json_body(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadAnswer(
            f"HTTP 200 whose body is not valid JSON ({err}; body starts {body[:60]!r})"
        ) from None
    if not isinstance(payload, dict):
        raise BadAnswer(
            f"HTTP 200 whose JSON is a {type(payload).__name__}, not a chat completion object"
        )
    return payload


def _raise_carried_error(payload: dict) -> None:
    if payload.get("error") is not None:
        error = payload["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise BadAnswer(f"HTTP 200 carrying an error: {str(message)[:200]}")


def _assemble_stream(body: bytes) -> dict:
    """A streamed answer (`data: {chunk}` events, then `data: [DONE]`) as the chat completion
    object it stands for: each choice's deltas joined into one message, the usage of the
    last event that has one. A stream is complete at its [DONE], or (servers that send none,
    such as `transformers serve`) once every choice has its finish reason; one that ends
    before is incomplete (BadAnswer)."""
    try:
        lines = body.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise BadAnswer(f"HTTP 200 whose event stream is not UTF-8 ({err})") from None
    messages: dict[int, dict] = {}
    usage, done = None, False
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": keep-alive"), event names
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            done = True
            break
        chunk = _json_body(data.encode("utf-8"))
        _raise_carried_error(chunk)
        usage = chunk.get("usage") or usage
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise BadAnswer(f"an event whose choices are a {type(choices).__name__}, not a list")
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            index = choice.get("index")
            message = messages.setdefault(
                index if isinstance(index, int) else 0, {"finish_reason": None}
            )
            for key in ("content", *REASONING_FIELDS):
                if isinstance(delta.get(key), str):
                    message[key] = message.get(key, "") + delta[key]
            message["finish_reason"] = choice.get("finish_reason") or message["finish_reason"]
    finished = bool(messages) and all(m["finish_reason"] for m in messages.values())
    if not (done or finished):
        raise BadAnswer(
            f"an event stream that ended before its [DONE] or a finish reason ({len(body)} "
            "bytes): incomplete"
        )
    choices = [
        {"index": index, "finish_reason": message.pop("finish_reason"), "message": message}
        for index, message in sorted(messages.items())
    ]
    return {"choices": choices, "usage": usage}


# Where reasoning parsers put a reasoning model's thinking: vLLM, SGLang and DeepSeek's API
# `reasoning_content`, newer vLLM and OpenRouter `reasoning`.
REASONING_FIELDS = ("reasoning_content", "reasoning")


def _choice_parts(choice) -> tuple[str, str]:
    """(reply, reasoning field) of one choice. A choice with neither is no completion."""
    message = choice.get("message") if isinstance(choice, dict) else None
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    thinking = next(
        (message[key] for key in REASONING_FIELDS if isinstance(message.get(key), str)), ""
    )
    reply = content if isinstance(content, str) else ""
    if not reply.strip() and not thinking.strip():
        what = "null" if content is None else repr(content)[:40]
        raise BadAnswer(
            f"an empty completion (content {what}, finish_reason "
            f"{choice.get('finish_reason') if isinstance(choice, dict) else None!r})"
        )
    return reply, thinking


def _usage_counts(usage) -> tuple[int, int, int]:
    """(prompt, completion, reasoning) tokens of a reply's usage; completion counts every
    output token billed. Servers report `completion_tokens_details.reasoning_tokens` as part of
    `completion_tokens` (OpenAI, vLLM, DeepSeek), or on top of it: then `total_tokens` says so,
    being the sum of all three, and they are added to the completion tokens."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("completion_tokens_details")
    details = details if isinstance(details, dict) else {}

    def count(source: dict, key: str) -> int:
        value = source.get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    prompt, completion = count(usage, "prompt_tokens"), count(usage, "completion_tokens")
    reasoning = count(details, "reasoning_tokens")
    if reasoning and count(usage, "total_tokens") >= prompt + completion + reasoning:
        completion += reasoning
    return prompt, completion, reasoning


def _split(total: int, weights: list[int]) -> list[int]:
    """`total` in whole parts proportional to the `weights`, adding up to `total` (in equal
    parts when every weight is 0: a count the server reported for choices of no length)."""
    if not sum(weights):
        weights = [1] * len(weights)
    bounds = [total * sum(weights[:i]) // sum(weights) for i in range(len(weights) + 1)]
    return [high - low for low, high in zip(bounds, bounds[1:])]


def _check_cancelled() -> None:
    cancel = getattr(_worker, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def pause(seconds: float) -> None:
    """Wait between retries (one place, so tests can record the delays instead of waiting); a
    cancelled run's worker wakes at once."""
    cancel = getattr(_worker, "cancel", None)
    if cancel is None:
        time.sleep(seconds)
    else:
        cancel.wait(seconds)


def _retry_after_s(err: Exception) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), if the server sent one."""
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
