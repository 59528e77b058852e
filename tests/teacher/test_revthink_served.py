"""RevThink's teacher calls: against a real `transformers serve` (SmolLM2) behind a counting
proxy for the plumbing (asked, cached, counted); with STAND-IN replies from a stub server, named
so, for the consistency rule and the budget (a tiny random model never writes a verdict on
demand, and its token counts cannot be planned)."""

from __future__ import annotations

import json

import pytest

from qrdistill.errors import BudgetReached
from qrdistill.llm.budget import BudgetConfig
from qrdistill.records import REVTHINK_FILE, Example, ReasoningPath, RevThinkTriple
from qrdistill.tasks import get_task
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.teacher.revthink import (
    BACKWARD_QUESTION_PROMPT,
    BACKWARD_REASONING_PROMPT,
    parse_consistency,
)
from qrdistill.training.config import TrainConfig
from qrdistill.training.data import revthink_items
from qrdistill.utils.io import read_json, read_jsonl_as
from served_model import StubOpenAIServer, chat_reply, openai_backend

pytestmark = pytest.mark.server

ROLES = ("backward_question", "backward_reasoning", "consistency")


def test_revthink_calls_are_made_cached_and_counted(served_model, proxy, examples_path, tmp_path):
    cfg = GenerateConfig(
        backend=openai_backend(proxy.base_url, served_model.model),
        styles=["vanilla"],
        show_progress=False,
    )
    out = tmp_path / "gen"
    paths = read_jsonl_as(generate_paths(cfg, examples_path, out, revthink=True), ReasoningPath)
    triples = read_jsonl_as(out / REVTHINK_FILE, RevThinkTriple)
    sent = [b["messages"][0]["content"] for b in proxy.completions()]
    assert len(paths) == 2 and len(sent) == 2 + 3 * 2  # two paths, three requests per question
    assert len(set(sent)) == 8

    examples = {e.id: e for e in read_jsonl_as(examples_path, Example)}
    assert [t.question_id for t in triples] == ["q1", "q2"]
    for t in triples:
        example = examples[t.question_id]
        base = get_task("gsm8k").build_prompt(example)
        assert (t.task, t.prompt, t.gold) == ("gsm8k", base, example.gold)
        # Each request quotes the replies before it, as the teacher wrote them.
        asked = BACKWARD_QUESTION_PROMPT.replace("{question}", base).replace(
            "{answer}", example.gold
        )
        assert asked in sent
        assert t.backward_question
        assert BACKWARD_REASONING_PROMPT.replace("{backward_question}", t.backward_question) in sent
        check = [p for p in sent if p.startswith(f"Original question:\n{base}")]
        assert len(check) == 1
        assert t.backward_question in check[0] and t.backward_reasoning in check[0]
        assert t.consistent == parse_consistency(t.consistency)
        assert set(t.usage) == set(ROLES)
        for usage in t.usage.values():
            assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 24

    usage = read_json(out / "usage.json")
    for role in ROLES:
        group = [t.usage[role] for t in triples]
        assert usage["per_style"][f"revthink:{role}"]["paths"] == 2
        assert usage["per_style"][f"revthink:{role}"]["total_tokens"] == sum(
            u.prompt_tokens + u.completion_tokens for u in group
        )
    assert usage["total"]["paths"] == 8
    assert usage["total"]["total_tokens"] == sum(
        p.usage.prompt_tokens + p.usage.completion_tokens for p in paths
    ) + sum(u.prompt_tokens + u.completion_tokens for t in triples for u in t.usage.values())

    # A rerun asks the server nothing and writes the same triples.
    before = (out / REVTHINK_FILE).read_text()
    generate_paths(cfg, examples_path, out, revthink=True)
    assert len(proxy.completions()) == 8
    assert (out / REVTHINK_FILE).read_text() == before
    # Without revthink the stage writes no triples.
    generate_paths(cfg, examples_path, tmp_path / "plain")
    assert not (tmp_path / "plain" / REVTHINK_FILE).exists()


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("Both agree: 5 - 2 = 3 apples.\nVerdict: consistent", True),
        ("The backward question asks for 7, not 3.\nVerdict: inconsistent", False),
        ("**Verdict:** Consistent", True),
        ("Verdict: consistent at first sight, but no.\nVerdict: inconsistent", False),
        ("The backward question is consistent with the original.", None),  # no verdict line
        ("Verdict: not consistent", None),
        ("", None),
    ],
)
def test_consistency_verdict_is_the_last_verdict_line(reply, verdict):
    """Stand-in replies of the consistency check."""
    assert parse_consistency(reply) is verdict


def _stand_in_teacher(stub: StubOpenAIServer):
    """A STAND-IN teacher: replies by what the prompt asks, consistent for q1 only."""

    def reply(_handler) -> dict:
        prompt = stub.requests[-1]["body"]["messages"][0]["content"]
        if "Write its backward question" in prompt:
            text = "stand-in backward question: how many did Tom have before buying 2?"
            if "pens" in prompt:
                text = "stand-in backward question: how many pens per box if 3 boxes hold 12?"
        elif prompt.startswith("Original question:"):
            text = "stand-in check.\nVerdict: " + (
                "consistent" if "Tom" in prompt else "inconsistent"
            )
        elif prompt.startswith("stand-in backward question"):
            text = "stand-in backward reasoning. The answer is \\boxed{3}."
        else:
            text = "stand-in forward reasoning. The answer is \\boxed{5}."
        return chat_reply(text, prompt_tokens=10, completion_tokens=5)

    return reply


def test_only_triples_judged_consistent_are_trained_on(examples_path, tmp_path, monkeypatch):
    from qrdistill.teacher import generate

    made = []  # a local teacher is loaded once for the paths and RevThink's three rounds
    make = generate.make_backend
    monkeypatch.setattr(generate, "make_backend", lambda cfg: made.append(cfg) or make(cfg))
    stub = StubOpenAIServer([])
    stub.default = (200, {}, _stand_in_teacher(stub))
    try:
        cfg = GenerateConfig(
            backend=openai_backend(stub.base_url, concurrency=1),
            styles=["vanilla"],
            show_progress=False,
        )
        out = tmp_path / "gen"
        paths = read_jsonl_as(generate_paths(cfg, examples_path, out, revthink=True), ReasoningPath)
    finally:
        stub.close()
    assert len(made) == 1 and len(stub.completions()) == 8
    triples = read_jsonl_as(out / REVTHINK_FILE, RevThinkTriple)
    assert [(t.question_id, t.consistent) for t in triples] == [("q1", True), ("q2", False)]
    assert triples[0].backward_reasoning == "stand-in backward reasoning. The answer is \\boxed{3}."
    # q1's forward path is right (5), q2's wrong: only q1's triple is kept in any case; make q2's
    # forward right too, so that the consistency verdict alone decides.
    paths = [p.model_copy(update={"correct": True}) for p in paths]
    train = TrainConfig.model_validate(
        {"students": [{"name": "a", "model": "x"}], "objective": "revthink"}
    )
    items, counts = revthink_items(paths, triples, train)
    assert [(i.question_id, i.task) for i in items] == [
        ("q1", "forward"),
        ("q1", "backward_question"),
        ("q1", "backward_reasoning"),
    ]
    assert counts["triples_not_consistent"] == 1


def test_revthink_calls_count_against_the_stage_budget(examples_path, tmp_path):
    """STAND-IN replies of 15 tokens each: a 60-token cap is spent by the two paths and the two
    backward questions, so the backward reasoning is never asked; a higher cap continues."""
    stub = StubOpenAIServer([])
    stub.default = (200, {}, _stand_in_teacher(stub))
    try:
        backend = openai_backend(stub.base_url, concurrency=1)
        cfg = GenerateConfig(
            backend=backend,
            styles=["vanilla"],
            show_progress=False,
            budget=BudgetConfig(max_total_tokens=60),
        )
        out = tmp_path / "gen"
        with pytest.raises(BudgetReached, match=r"0 of 2 questions complete \(4 of 8 requests\)"):
            generate_paths(cfg, examples_path, out, revthink=True)
        assert len(stub.completions()) == 4
        usage = read_json(out / "usage.json")
        assert usage["stopped_by_budget"] == {
            "questions_complete": 0,
            "questions": 2,
            "requests_finished": 4,
            "requests": 8,
        }
        assert not (out / REVTHINK_FILE).exists() and not (out / "paths.jsonl").exists()
        cfg.budget = BudgetConfig(max_total_tokens=1000)
        generate_paths(cfg, examples_path, out, revthink=True)
        assert len(stub.completions()) == 8  # only the four never asked
        assert read_json(out / "usage.json")["total"]["total_tokens"] == 8 * 15
        assert len((out / REVTHINK_FILE).read_text().splitlines()) == 2
    finally:
        stub.close()
    assert json.loads((out / REVTHINK_FILE).read_text().splitlines()[0])["consistent"] is True
