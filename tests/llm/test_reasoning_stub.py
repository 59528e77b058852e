"""Reasoning-model teachers through the openai backend, against RawStubServer standing in for
servers with a reasoning parser, which cannot run here (vLLM `--reasoning-parser`, SGLang,
DeepSeek's and OpenAI's APIs): the thinking in `reasoning_content` or `reasoning`, whole or
streamed as deltas of either kind, and usage with `completion_tokens_details.reasoning_tokens`.
The `<think>` tag route on a real server is in tests/teacher/test_reasoning_served.py."""

from __future__ import annotations

import json
import sqlite3

import pytest

from faults.raw_stub import RawStubServer, Reply
from qrdistill.errors import BackendError, BudgetReached
from qrdistill.llm import RequestCache
from qrdistill.llm.budget import BudgetConfig
from qrdistill.llm.openai import parse_completion
from qrdistill.llm.thinking import split_tags
from qrdistill.records import Generation, ReasoningPath
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.teacher.styles import REPLY_HOLDS_REASONING
from qrdistill.utils.io import read_json, read_jsonl_as
from served_model import openai_backend

# The thinking holds a wrong guess in the answer format: the answer check must not read it.
THINKING = "Is it \\boxed{4}? No: Tom starts with 3 apples, and 2 more gives 3 + 2 = 5."
ANSWER = "He has 3 + 2 = 5 apples. The answer is \\boxed{5}."


def usage(prompt: int, completion: int, reasoning: int, total: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def pieces(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# Each shape a server with a reasoning parser sends, and a whole answer stands for it.
SHAPES = {
    "reasoning_content": lambda u: Reply.reasoning(ANSWER, THINKING, usage=u),
    "reasoning": lambda u: Reply.reasoning(ANSWER, THINKING, field="reasoning", usage=u),
    "streamed reasoning_content": lambda u: Reply.stream(
        [{"reasoning_content": p} for p in pieces(THINKING)]
        + [{"content": p} for p in pieces(ANSWER)],
        usage=u,
    ),
    "streamed reasoning": lambda u: Reply.stream(
        [{"reasoning": p} for p in pieces(THINKING)] + [{"content": p} for p in pieces(ANSWER)],
        usage=u,
    ),
}


def generate(stub, examples_path, out, **settings):
    backend = {"thinking": "auto", **settings.pop("backend", {})}
    cfg = GenerateConfig(
        backend=openai_backend(stub.base_url, concurrency=1, **backend),
        styles=["vanilla"],
        show_progress=False,
        **settings,
    )
    return read_jsonl_as(generate_paths(cfg, examples_path, out), ReasoningPath)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_stub_reasoning_parser_shapes_keep_thinking_and_answer_apart(
    shape, examples_path, tmp_path, caplog
):
    reply = SHAPES[shape](usage(20, 300, 250, 320))
    stub = RawStubServer([], default=reply)
    try:
        paths = generate(
            stub,
            examples_path,
            tmp_path / "gen",
            backend={"stream": shape.startswith("streamed")},
            reasoning="thinking_and_answer",
        )
        assert stub.posts == 2
        sent = stub.bodies[0]
        assert sent.get("stream", False) == shape.startswith("streamed")
        if sent.get("stream"):
            assert sent["stream_options"] == {"include_usage": True}
        q1 = paths[0]
        assert (q1.thinking, q1.text, q1.learn) == (THINKING, ANSWER, "thinking_and_answer")
        assert (q1.answer, q1.correct) == ("5", True)  # the answer check reads the answer text
        # The usage includes the reasoning tokens (completion_tokens counts them already here).
        assert q1.usage.model_dump() == {
            "prompt_tokens": 20,
            "completion_tokens": 300,
            "reasoning_tokens": 250,
        }
        spent = read_json(tmp_path / "gen" / "usage.json")["total"]
        assert (spent["completion_tokens"], spent["reasoning_tokens"]) == (600, 500)

        # Both parts stay in the cache: learning the answer alone asks the server nothing more.
        again = generate(stub, examples_path, tmp_path / "gen", reasoning="answer")
        assert stub.posts == 2
        assert [(p.thinking, p.text, p.learn) for p in again] == [(THINKING, ANSWER, "answer")] * 2
        assert again[0].learned_text() == ANSWER
        assert q1.learned_text() == f"<think>\n{THINKING}\n</think>\n\n{ANSWER}"

        # The null twin: thinking: none separates nothing, and the field's thinking is dropped.
        plain = generate(
            stub, examples_path, tmp_path / "gen", backend={"thinking": "none"}, reasoning="answer"
        )
        assert stub.posts == 2
        assert [(p.thinking, p.text) for p in plain] == [("", ANSWER)] * 2
        warned = [r.getMessage() for r in caplog.records if "thinking: none" in r.getMessage()]
        assert len(warned) == 1 and warned[0].startswith("2 completion(s) of stub hold")
    finally:
        stub.close()


def test_stub_styled_answer_tells_a_reasoning_teacher_that_its_reply_is_kept(
    examples_path, tmp_path
):
    stub = RawStubServer([], default=SHAPES["reasoning_content"](usage(20, 300, 250, 320)))
    try:
        generate(stub, examples_path, tmp_path / "a")  # styled_answer is the default
        generate(stub, examples_path, tmp_path / "b", reasoning="answer")
        generate(stub, examples_path, tmp_path / "c", backend={"thinking": "none"})
    finally:
        stub.close()
    prompts = [body["messages"][0]["content"] for body in stub.bodies]
    assert len(prompts) == 6
    assert all(p.endswith(REPLY_HOLDS_REASONING) for p in prompts[:2])
    # Learning the answer as it comes, or from a teacher that does not think: the style alone.
    assert not any(REPLY_HOLDS_REASONING in p for p in prompts[2:])
    assert (
        prompts[2:4] == prompts[4:6] == [p.removesuffix(REPLY_HOLDS_REASONING) for p in prompts[:2]]
    )


def test_reasoning_tokens_are_output_whether_or_not_the_server_counts_them_in_completion():
    def parse(u: dict, n: int = 1) -> list[Generation]:
        choices = [
            {
                "index": i,
                "message": {"content": "ab" * (i + 1), "reasoning_content": "xyz" * (i + 1)},
            }
            for i in range(n)
        ]
        body = json.dumps({"choices": choices, "usage": u}).encode()
        return parse_completion(body, "application/json")

    # Included in completion_tokens (OpenAI, vLLM, DeepSeek): total = prompt + completion.
    (inside,) = parse(usage(10, 100, 80, 110))
    assert (inside.completion_tokens, inside.reasoning_tokens) == (100, 80)
    # On top of completion_tokens: total = prompt + completion + reasoning; all are output.
    (on_top,) = parse(usage(10, 20, 80, 110))
    assert (on_top.completion_tokens, on_top.reasoning_tokens) == (100, 80)
    # Several choices share what was billed, adding up to it exactly.
    shared = parse(usage(10, 100, 81, 110), n=3)
    assert sum(g.completion_tokens for g in shared) == 100
    assert sum(g.reasoning_tokens for g in shared) == 81
    assert [g.thinking for g in shared] == ["xyz", "xyzxyz", "xyzxyzxyz"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reasoning_tokens", [400, 0])
def test_stub_budget_stops_on_reasoning_tokens(seed, reasoning_tokens, examples_path, tmp_path):
    """Each answer is 7 prompt + 3 answer tokens and `reasoning_tokens` on top. With 400 of them
    the cap of 1,000 tokens is reached after the third of six requests; without them (the null
    twin) all six together cost 60 tokens."""
    reply = Reply.reasoning(
        ANSWER,
        THINKING,
        usage=usage(7, 3, reasoning_tokens, 10 + reasoning_tokens),
    )
    stub = RawStubServer([], default=reply)
    cfg = GenerateConfig(
        backend=openai_backend(stub.base_url, concurrency=1, thinking="auto", seed=seed),
        styles=["vanilla", "program", "backward"],
        budget=BudgetConfig(max_total_tokens=1000),
        show_progress=False,
    )
    try:
        if reasoning_tokens:
            with pytest.raises(BudgetReached, match="1,230 tokens of max_total_tokens 1,000"):
                generate_paths(cfg, examples_path, tmp_path / "gen")
            assert stub.posts == 3
            spent = read_json(tmp_path / "gen" / "usage.json")
            assert spent["stopped_by_budget"]["requests_finished"] == 3
        else:
            generate_paths(cfg, examples_path, tmp_path / "gen")
            assert stub.posts == 6
            spent = read_json(tmp_path / "gen" / "usage.json")
            assert "stopped_by_budget" not in spent
    finally:
        stub.close()
    assert spent["total"]["completion_tokens"] == stub.posts * (3 + reasoning_tokens)
    assert spent["total"]["reasoning_tokens"] == stub.posts * reasoning_tokens


def test_stub_request_carries_the_reasoning_options(examples_path, tmp_path):
    stub = RawStubServer([], default=Reply.completion("The answer is \\boxed{5}."))
    try:
        generate(
            stub,
            examples_path,
            tmp_path / "gen",
            backend={
                "max_tokens_param": "max_completion_tokens",
                "reasoning_effort": "high",
                "extra_body": {"chat_template_kwargs": {"enable_thinking": True}},
            },
        )
    finally:
        stub.close()
    body = stub.bodies[0]
    assert "max_tokens" not in body and body["max_completion_tokens"] == 24
    assert body["reasoning_effort"] == "high"
    assert body["chat_template_kwargs"] == {"enable_thinking": True}


def test_stub_stream_cut_before_done_is_retried_then_named(examples_path, tmp_path, pauses):
    cut = Reply.stream([{"reasoning_content": "Tom"}, {"content": "The ans"}], cut=True)
    stub = RawStubServer([], default=cut)
    try:
        with pytest.raises(BackendError, match=r"ended before its \[DONE\]"):
            generate(stub, examples_path, tmp_path / "gen", backend={"stream": True})
    finally:
        stub.close()
    assert stub.posts == 2 and len(pauses) == 1  # one retry (max_retries=1), then named
    assert not (tmp_path / "gen" / "cache.sqlite").exists()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("<think>a, b</think>\n\nThe answer is 5.", ("a, b", "The answer is 5.")),
        ("  <think>\na\n</think>The answer is 5.", ("a", "The answer is 5.")),
        # R1 distills: the chat template wrote the opening tag, the reply starts inside it.
        ("3 plus 2 is 5</think> The answer is 5.", ("3 plus 2 is 5", "The answer is 5.")),
        # Out of tokens while thinking: all thinking, no answer.
        ("<think>3 plus 2 is", ("3 plus 2 is", "")),
        # No leading block: the reply is the answer, tags in it included.
        ("The answer is 5.", ("", "The answer is 5.")),
        (
            "Use <think>x</think> tags. The answer is 5.",
            ("", "Use <think>x</think> tags. The answer is 5."),
        ),
        ("The answer is 5.<think>", ("", "The answer is 5.<think>")),
    ],
)
def test_split_tags(reply, expected):
    assert split_tags(reply, ("<think>", "</think>")) == expected


def test_split_tags_takes_configured_tags():
    tags = ("<|begin_of_thought|>", "<|end_of_thought|>")
    assert split_tags("<|begin_of_thought|>x<|end_of_thought|>A", tags) == ("x", "A")
    assert split_tags("<think>x</think>A", tags) == ("", "<think>x</think>A")


def test_a_cache_from_before_reasoning_teachers_is_read_and_split_without_new_calls(
    examples_path, tmp_path
):
    """A cache written before the thinking columns existed: its rows are read, gain the columns,
    and a reply a thinking block leads is split by the tags route, asking the server nothing."""
    stub = RawStubServer([], default=Reply.completion(f"<think>{THINKING}</think>\n{ANSWER}"))
    out = tmp_path / "gen"
    try:
        first = generate(stub, examples_path, out, backend={"thinking": "none"}, reasoning="answer")
        assert first[0].text.startswith("<think>")
        with sqlite3.connect(out / "cache.sqlite") as conn:
            rows = conn.execute(
                "SELECT key, label, text, prompt_tokens, completion_tokens, created FROM completions"
            ).fetchall()
        (out / "cache.sqlite").unlink()
        for suffix in ("-wal", "-shm"):
            (out / f"cache.sqlite{suffix}").unlink(missing_ok=True)
        with sqlite3.connect(out / "cache.sqlite") as conn:  # the schema of the first release
            conn.execute(
                "CREATE TABLE completions (key TEXT PRIMARY KEY, label TEXT, text TEXT NOT NULL, "
                "prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)"
            )
            conn.executemany("INSERT INTO completions VALUES (?, ?, ?, ?, ?, ?)", rows)
        again = generate(stub, examples_path, out, reasoning="answer")  # thinking: auto
        assert stub.posts == 2
        assert [(p.thinking, p.text) for p in again] == [(THINKING, ANSWER)] * 2
        with RequestCache(out / "cache.sqlite") as cache:
            cache.put("new", "a new row", Generation("A", 1, 2, thinking="T", reasoning_tokens=1))
            assert cache.get_many(["new"])["new"] == Generation(
                "A", 1, 2, thinking="T", reasoning_tokens=1
            )
    finally:
        stub.close()


def test_malformed_event_streams_are_bad_answers_never_crashes():
    """Streams cut, corrupted or of odd shapes: each parses, or is a BadAnswer (retried)."""
    import random

    from qrdistill.llm.openai import BadAnswer

    good = SHAPES["streamed reasoning"](usage(20, 300, 250, 320)).body
    odd = [b'data: {"choices": ' + s + b"}\n\n" for s in (b"5", b'"x"', b"[null]", b"{}")]
    odd += [b'data: {"choices": [{"index": [1], "delta": {"content": 3}}]}\n\n']
    odd += [b'data: {"choices": [], "usage": "many"}\n\n', b'data: {"error": "overloaded"}\n\n']
    rng = random.Random(22)
    outcomes = {"parsed": 0, "bad answer": 0}
    for _ in range(300):
        body = bytearray(good)
        shape = rng.randrange(3)
        if shape == 0:
            body = body[: rng.randrange(len(body))]
        elif shape == 1:
            for _ in range(rng.randrange(1, 6)):
                body[rng.randrange(len(body))] = rng.randrange(256)
        else:
            cut = good.index(b"data:", rng.randrange(len(good) // 2))
            body = good[:cut] + rng.choice(odd) + good[cut:]
        try:
            parse_completion(bytes(body), "text/event-stream")
            outcomes["parsed"] += 1
        except BadAnswer:
            outcomes["bad answer"] += 1
    assert outcomes["parsed"] > 0 and outcomes["bad answer"] > 0
