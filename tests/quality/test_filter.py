"""Filtering: answer check, judge verdicts stored with every path, the funnel, re-filtering free.

The scripted judge here is a STUB: it is the only way to get malformed replies in a chosen order.
The real judge (a served SmolLM2) runs in tests/quality/test_filter_served.py.
"""

from __future__ import annotations

import sqlite3

import pytest
from rich.console import Console

from qrdistill.quality import FilterConfig, filter_paths, funnel_table
from qrdistill.quality.judge import FORMAT_REMINDER
from qrdistill.records import JudgeVerdict, ReasoningPath, Usage
from qrdistill.utils.io import read_json, read_jsonl_as, write_jsonl
from served_model import StubOpenAIServer, free_port, openai_backend

STUB_USAGE = Usage(prompt_tokens=10, completion_tokens=5)  # what the stub reports per reply


def make_path(question_id: str, style: str, text: str, correct: bool) -> ReasoningPath:
    return ReasoningPath(
        id=ReasoningPath.make_id(question_id, style, 0),
        question_id=question_id,
        task="gsm8k",
        style=style,
        prompt=f"Question {question_id}?",
        gold="5",
        text=text,
        answer="5" if correct else "4",
        correct=correct,
        backend="openai",
        model="teacher",
    )


@pytest.fixture
def paths_path(tmp_path):
    path = tmp_path / "paths.jsonl"
    write_jsonl(
        path,
        [
            make_path("q1", "vanilla", "3 + 2 = 5. \\boxed{5}", correct=True),
            make_path("q1", "program", "print(3 + 2)  # 5. \\boxed{5}", correct=True),
            make_path("q2", "vanilla", "3 + 1 = 4. \\boxed{4}", correct=False),
            make_path("q2", "program", "x = 4 + 1  # four from nowhere. \\boxed{5}", correct=True),
        ],
    )
    return path


def judge_config(base_url: str, **overrides) -> FilterConfig:
    return FilterConfig(
        judge=openai_backend(base_url, concurrency=1).model_dump(), show_progress=False, **overrides
    )


def test_stub_judge_verdicts_are_stored_and_unreadable_ones_are_rejected(paths_path, tmp_path):
    stub = StubOpenAIServer(
        [
            "Score: 9/10\nReason: each step follows.",  # q1 vanilla
            "Looks fine to me!",  # q1 program: unreadable, asked again twice
            '{"score": 3, "reason": "the 4 is invented"}',  # q2 program
            "I already said it is fine.",
            "Fine.",
        ]
    )
    out = tmp_path / "filter"
    try:
        kept_path = filter_paths(judge_config(stub.base_url), paths_path, out)
    finally:
        stub.close()

    judged = {p.id: p for p in read_jsonl_as(out / "judged.jsonl", ReasoningPath)}
    assert judged["q1::vanilla::0"].judge == JudgeVerdict(
        score=0.9, reason="each step follows.", status="ok", attempts=1, usage=STUB_USAGE
    )
    assert judged["q2::program::0"].judge == JudgeVerdict(
        score=0.3, reason="the 4 is invented", status="ok", attempts=1, usage=STUB_USAGE
    )
    unreadable = judged["q1::program::0"].judge
    assert (unreadable.status, unreadable.score, unreadable.attempts) == ("unparseable", None, 3)
    assert unreadable.usage == Usage(prompt_tokens=30, completion_tokens=15)  # all 3 attempts
    assert "Fine." in unreadable.reason
    assert (
        judged["q2::vanilla::0"].judge.status == "skipped"
    )  # wrong answer: never sent to the judge
    assert {pid: p.kept for pid, p in judged.items()} == {
        "q1::vanilla::0": True,
        "q1::program::0": False,
        "q2::vanilla::0": False,
        "q2::program::0": False,
    }
    originals = {p.id: p for p in read_jsonl_as(paths_path, ReasoningPath)}
    for pid, path in judged.items():  # nothing else about a path changes
        unchanged = {"judge", "kept"}
        assert path.model_dump(exclude=unchanged) == originals[pid].model_dump(exclude=unchanged)
    assert [p.id for p in read_jsonl_as(kept_path, ReasoningPath)] == ["q1::vanilla::0"]

    # What the judge was asked: question and path, and the format reminder only on a retry.
    asked = [body["messages"][0]["content"] for body in stub.completions()]
    assert len(asked) == 5
    for prompt, path_id in zip(
        asked,
        ["q1::vanilla::0", "q1::program::0", "q2::program::0", "q1::program::0", "q1::program::0"],
    ):
        assert originals[path_id].prompt in prompt and originals[path_id].text in prompt
    assert [FORMAT_REMINDER in prompt for prompt in asked] == [False, False, False, True, True]

    funnel = read_json(out / "funnel.json")
    assert funnel["per_style"] == {
        "vanilla": {"generated": 2, "answer_correct": 1, "judge_kept": 1, "judge_unparseable": 0},
        "program": {"generated": 2, "answer_correct": 2, "judge_kept": 0, "judge_unparseable": 1},
    }
    assert funnel["total"] == {
        "generated": 4,
        "answer_correct": 3,
        "judge_kept": 1,
        "judge_unparseable": 1,
    }
    assert funnel["threshold"] == 0.5

    console = Console(record=True, width=120)
    console.print(funnel_table(funnel))
    table = console.export_text()
    assert "threshold 0.5" in table and "program" in table and "3 (75%)" in table

    # Re-filter: another threshold, unreadable kept. The judge is gone; no call may be needed.
    dead = judge_config(f"http://127.0.0.1:{free_port()}/v1", on_unparseable="keep")
    filter_paths(dead, paths_path, out, threshold=0.25)
    kept = {p.id for p in read_jsonl_as(out / "kept.jsonl", ReasoningPath)}
    assert kept == {"q1::vanilla::0", "q1::program::0", "q2::program::0"}
    assert read_json(out / "funnel.json")["threshold"] == 0.25
    with sqlite3.connect(out / "cache.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 5


def test_stub_judge_second_attempt_can_succeed(paths_path, tmp_path):
    stub = StubOpenAIServer(
        [
            "Hmm.",
            "Score: 8/10\nReason: fine",
            "Score: 8/10\nReason: fine",
            '{"score": 7, "reason": "ok"}',
        ]
    )
    try:
        filter_paths(judge_config(stub.base_url), paths_path, tmp_path / "filter")
    finally:
        stub.close()
    judged = {p.id: p for p in read_jsonl_as(tmp_path / "filter" / "judged.jsonl", ReasoningPath)}
    assert judged["q1::vanilla::0"].judge == JudgeVerdict(
        score=0.7,
        reason="ok",
        status="ok",
        attempts=2,
        usage=Usage(prompt_tokens=20, completion_tokens=10),
    )
    assert judged["q1::vanilla::0"].kept


def test_judge_disabled_keeps_correct_paths_without_any_call(paths_path, tmp_path):
    cfg = judge_config(f"http://127.0.0.1:{free_port()}/v1", judge_enabled=False)
    kept = read_jsonl_as(filter_paths(cfg, paths_path, tmp_path / "filter"), ReasoningPath)
    assert [p.id for p in kept] == ["q1::vanilla::0", "q1::program::0", "q2::program::0"]
    assert all(p.judge == JudgeVerdict(status="skipped", reason="judge disabled") for p in kept)
    assert not (tmp_path / "filter" / "cache.sqlite").exists()


def test_threshold_outside_the_score_range_is_an_error(paths_path, tmp_path):
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        filter_paths(
            FilterConfig(judge_enabled=False), paths_path, tmp_path / "filter", threshold=8
        )


def test_hf_judge_runs_through_the_same_backends(tiny_students, paths_path, tmp_path):
    """A tiny random local model as judge: whatever it writes, each verdict is read or failed closed."""
    judge = {"kind": "hf", "model": str(tiny_students[1]), "max_tokens": 8, "dtype": "float32"}
    cfg = FilterConfig(judge=judge, judge_attempts=2, show_progress=False)
    filter_paths(cfg, paths_path, tmp_path / "filter")
    judged = [
        p for p in read_jsonl_as(tmp_path / "filter" / "judged.jsonl", ReasoningPath) if p.correct
    ]
    assert len(judged) == 3
    for path in judged:
        if path.judge.status == "ok":
            assert 0.0 <= path.judge.score <= 1.0 and path.kept == (path.judge.score >= 0.5)
        else:
            assert (path.judge.status, path.judge.attempts, path.kept) == ("unparseable", 2, False)


def test_response_format_reaches_the_server_only_when_set(paths_path, tmp_path):
    from qrdistill.quality.judge import VERDICT_RESPONSE_FORMAT

    bodies = {}
    for name, overrides in {"plain": {}, "verdict": {"response_format": "verdict"}}.items():
        stub = StubOpenAIServer([], default='{"score": 8, "reason": "fine"}')
        cfg = FilterConfig(
            judge={**openai_backend(stub.base_url, concurrency=1).model_dump(), **overrides},
            show_progress=False,
        )
        try:
            filter_paths(cfg, paths_path, tmp_path / name)
        finally:
            stub.close()
        bodies[name] = stub.completions()
    assert all("response_format" not in body for body in bodies["plain"])
    assert [body["response_format"] for body in bodies["verdict"]] == [VERDICT_RESPONSE_FORMAT] * 3
