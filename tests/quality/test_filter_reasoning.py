"""The quality stage and a reasoning teacher's paths: the judge reads what students will learn
(the answer text, or the thinking and the answer), and a reasoning judge's verdict is read from
its answer, not its thinking. The judge here is RawStubServer, standing in for a server with a
reasoning parser (which cannot run here)."""

from __future__ import annotations

import pytest

from faults.raw_stub import RawStubServer, Reply
from qrdistill.quality import FilterConfig, filter_paths
from qrdistill.records import ReasoningPath
from qrdistill.utils.io import read_json, read_jsonl_as, write_jsonl
from served_model import openai_backend

THINKING = "Maybe 4? No: 3 + 2 = 5."
ANSWER = "Tom has 3 + 2 = 5 apples. The answer is \\boxed{5}."


def path(question_id: str, learn: str) -> ReasoningPath:
    return ReasoningPath(
        id=ReasoningPath.make_id(question_id, "vanilla", 0),
        question_id=question_id,
        task="gsm8k",
        style="vanilla",
        prompt=f"Question {question_id}?",
        gold="5",
        text=ANSWER,
        thinking=THINKING,
        learn=learn,
        answer="5",
        correct=True,
    )


def judge(tmp_path, reply: Reply, thinking: str) -> tuple[list[ReasoningPath], list[str]]:
    paths_path = tmp_path / "paths.jsonl"
    write_jsonl(paths_path, [path("q1", "thinking_and_answer"), path("q2", "answer")])
    stub = RawStubServer([], default=reply)
    cfg = FilterConfig(
        judge=openai_backend(stub.base_url, concurrency=1, thinking=thinking).model_dump(),
        judge_attempts=1,
        show_progress=False,
    )
    try:
        filter_paths(cfg, paths_path, tmp_path / f"filter-{thinking}")
    finally:
        stub.close()
    judged = read_jsonl_as(tmp_path / f"filter-{thinking}" / "judged.jsonl", ReasoningPath)
    return judged, [body["messages"][0]["content"] for body in stub.bodies]


def test_the_judge_reads_what_students_will_learn(tmp_path):
    judged, prompts = judge(tmp_path, Reply.completion('{"score": 8, "reason": "sound"}'), "none")
    tagged = f"<think>\n{THINKING}\n</think>\n\n{ANSWER}"
    assert tagged in prompts[0]
    assert ANSWER in prompts[1] and THINKING not in prompts[1]
    assert [(p.judge.score, p.kept) for p in judged] == [(0.8, True)] * 2


@pytest.mark.parametrize("thinking", ["auto", "none"])
def test_a_reasoning_judges_verdict_is_read_from_its_answer(thinking, tmp_path):
    """The judge thinks "Score: 2" before it answers 8. Read apart (auto), the verdict is 8;
    read whole (none, the null twin), the reply holds two scores that differ: unparseable."""
    reply = Reply.completion(
        '<think>\nScore: 2 - or is the step fine?\n</think>\n{"score": 8, "reason": "ok"}'
    )
    judged, _ = judge(tmp_path, reply, thinking)
    if thinking == "auto":
        assert [(p.judge.status, p.judge.score) for p in judged] == [("ok", 0.8)] * 2
    else:
        assert [(p.judge.status, p.kept) for p in judged] == [("unparseable", False)] * 2


def test_a_reasoning_judges_reasoning_tokens_are_its_spend(tmp_path):
    reply = Reply.reasoning(
        '{"score": 8, "reason": "ok"}',
        "The steps add up.",
        usage={
            "prompt_tokens": 40,
            "completion_tokens": 12,
            "total_tokens": 352,
            "completion_tokens_details": {"reasoning_tokens": 300},
        },
    )
    judged, _ = judge(tmp_path, reply, "field")
    assert [p.judge.usage.model_dump() for p in judged] == [
        {"prompt_tokens": 40, "completion_tokens": 312, "reasoning_tokens": 300}
    ] * 2
    spent = read_json(tmp_path / "filter-field" / "usage.json")["total"]
    assert (spent["completion_tokens"], spent["reasoning_tokens"]) == (624, 600)
