"""Reading judge replies: the formats judges actually write, normalised to [0, 1]."""

from __future__ import annotations

import pytest

from qrdistill.quality import parse_verdict
from qrdistill.quality.judge import DEFAULT_JUDGE_TEMPLATE, judge_prompt
from qrdistill.records import ReasoningPath


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Score: 8/10\nReason: every step follows.", (0.8, "every step follows.")),
        ("**Score:** 7 out of 10. Step 2 is a guess.", (0.7, "Step 2 is a guess")),
        ('{"score": 0.8, "reason": "sound"}', (0.8, "sound")),
        ('Here you go: {"score": 9, "reason": "fine"}', (0.9, "fine")),
        ('{"score": "6/10", "reason": "meh"}', (0.6, "meh")),
        ("0.8", (0.8, "")),
        ("3", (0.3, "")),  # a bare integer is on the 0-10 scale the prompt asks for
        ("1.0", (1.0, "")),  # a decimal up to 1 is a probability
        ("score = 85%\nReason: mostly right", (0.85, "mostly right")),
        ("Rating: 10", (1.0, "")),
        ("Score: 0\nReason: the numbers are invented", (0.0, "the numbers are invented")),
        # A judge that echoes the format line first: its last score counts, never the "0" of "0 to 10".
        ("Score: <an integer from 0 to 10>\nScore: 9\nReason: ok", (0.9, "ok")),
    ],
)
def test_readable_verdicts(reply, expected):
    score, reason = parse_verdict(reply)
    assert score == pytest.approx(expected[0]) and reason == expected[1]


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "The solution looks good to me.",
        "Score: 11/10",
        "Score: 250",
        "Score: high",
        '{"score": null, "reason": "unsure"}',
        '{"score": true}',
        "Step 1: 3 + 2 = 5",
    ],
)
def test_unreadable_verdicts(reply):
    assert parse_verdict(reply) is None


def test_judge_prompt_holds_question_and_path_with_their_braces():
    path = ReasoningPath(
        id="q::vanilla::0",
        question_id="q",
        task="math",
        style="vanilla",
        prompt="Solve {x | x > 1}. Put it in \\boxed{}.",
        gold="2",
        text="So \\boxed{2}.",
    )
    prompt = judge_prompt(DEFAULT_JUDGE_TEMPLATE, path)
    assert "Solve {x | x > 1}. Put it in \\boxed{}." in prompt and "So \\boxed{2}." in prompt
    assert "{question}" not in prompt and "{path}" not in prompt
