"""Reading judge replies: the verdict and nothing else, on the scale the prompt states."""

from __future__ import annotations

import pytest

from qrdistill.quality import FilterConfig, parse_verdict
from qrdistill.quality.judge import (
    DEFAULT_JUDGE_TEMPLATE,
    FORMAT_REMINDER,
    PROBABILITY_SCALE,
    VERDICT_RESPONSE_FORMAT,
    judge_prompt,
)
from qrdistill.records import ReasoningPath


@pytest.mark.parametrize(
    "reply, expected",
    [
        # The table: the score is the verdict's, never a number in the reason.
        ("Score: 2\nReason: the final score 10 is right", (0.2, "the final score 10 is right")),
        (
            "Score: 8\nReason: The score of 85 points in the problem is used",
            (0.8, "The score of 85 points in the problem is used"),
        ),
        ("Score: 9\nReason: a rating 2 star hotel", (0.9, "a rating 2 star hotel")),
        # The JSON verdict the prompt asks for, bare, after a preamble, in a code fence.
        ('{"score": 7, "reason": "step 3 is a guess"}', (0.7, "step 3 is a guess")),
        ('Here you go: {"score": 9, "reason": "fine"}', (0.9, "fine")),
        ('```json\n{"score": 3, "reason": "invents 4"}\n```', (0.3, "invents 4")),
        ('{"score": "6/10", "reason": "meh"}', (0.6, "meh")),
        ('{"score": 8.0, "reason": "a whole number"}', (0.8, "a whole number")),
        # A trailing comma, as SmolLM2-135M writes it: still the verdict object.
        ('The JSON object is:\n{\n "score": 10,\n "reason": "sound",\n}', (1.0, "sound")),
        # A reason in JSON that quotes scores and braces is the reason, not a verdict.
        (
            '{"score": 4, "reason": "Score: 10 in the problem; \\\\frac{1}{2} is wrong"}',
            (0.4, "Score: 10 in the problem; \\frac{1}{2} is wrong"),
        ),
        # Verdict lines, markdown included.
        ("Score: 8/10\nReason: every step follows.", (0.8, "every step follows.")),
        ("**Score:** 7 out of 10. Step 2 is a guess.", (0.7, "Step 2 is a guess.")),
        ("- **Score**: 10\n- **Reason**: sound", (1.0, "sound")),
        ("Score: 0\nReason: the numbers are invented", (0.0, "the numbers are invented")),
        # A judge that echoes the format line first: the placeholder is no verdict.
        ("Score: <an integer from 0 to 10>\nScore: 9\nReason: ok", (0.9, "ok")),
        # The same score stated twice (line and JSON) is one verdict.
        ('Score: 6\n{"score": 6, "reason": "twice"}', (0.6, "twice")),
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
        "I can't evaluate this solution.",  # a refusal
        "Step 1: 3 + 2 = 5",
        # Scores only in prose or in the problem's numbers.
        "The final score 10 is right, a rating 2 star hotel.",
        "Reason: the score is 8",
        # Off the 0-10 integer scale: never guessed at.
        "Score: 0.5",  # a probability, or half a point? unparseable
        '{"score": 0.8, "reason": "the 0-1 scale"}',
        "Score: 85",
        "Score: 80%",
        "Score: 8/100",
        "Score: 11/10",
        "Score: 8.5",
        "Score: -1",
        "Score: high",
        '{"score": null, "reason": "unsure"}',
        '{"score": true}',
        # Two verdicts that disagree.
        "Score: 8\nReason: fine\nScore: 3",
        'Score: 9\n```json\n{"score": 2, "reason": "no"}\n```',
        '{"score": 9, "reason": "a"} {"score": 4, "reason": "b"}',
        # The old lenient reads: a bare number, another label.
        "8",
        "Rating: 10",
    ],
)
def test_unreadable_verdicts(reply):
    assert parse_verdict(reply) is None


def test_probability_scale_reads_the_probability_backends_line():
    reply = "Score: 0.8731\nReason: P(Yes) = 0.8731 as the judge's next token"
    assert parse_verdict(reply, PROBABILITY_SCALE) == (
        pytest.approx(0.8731),
        "P(Yes) = 0.8731 as the judge's next token",
    )
    assert parse_verdict("Score: 1.2", PROBABILITY_SCALE) is None


def test_prompt_and_reminder_state_the_scale():
    assert '{"score": <an integer from 0 to 10' in DEFAULT_JUDGE_TEMPLATE
    assert "integer from 0 to 10" in FORMAT_REMINDER
    schema = VERDICT_RESPONSE_FORMAT["json_schema"]["schema"]["properties"]["score"]
    assert (schema["minimum"], schema["maximum"], schema["type"]) == (0, 10, "integer")


def test_response_format_names_and_backends():
    openai = {"kind": "openai", "model": "m", "api_key_env": None}
    cfg = FilterConfig(judge={**openai, "response_format": "verdict"})
    assert cfg.judge.response_format == VERDICT_RESPONSE_FORMAT
    assert cfg.judge.sampling()["response_format"] == VERDICT_RESPONSE_FORMAT  # in the cache key
    assert "response_format" not in FilterConfig(judge=openai).judge.sampling()
    cfg = FilterConfig(judge={**openai, "response_format": "json_object"})
    assert cfg.judge.response_format == {"type": "json_object"}
    with pytest.raises(ValueError, match="one of verdict, json_object"):
        FilterConfig(judge={**openai, "response_format": "yaml"})
    with pytest.raises(ValueError, match="cannot honour it"):
        FilterConfig(judge={"kind": "hf", "response_format": "verdict"})


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
