"""LLM-as-judge: is every intermediate step of a path sound?

The verdict protocol (docs/METHOD.md, "Quality filtering"): the judge is asked for one JSON object
{"score": N, "reason": "..."} with N an integer from 0 to 10, stated in the prompt; an openai
judge can also be held to it by the server (`filter.judge.response_format`). A reply is read from
its verdict only, never from the words around it ("score" and "rating" are everyday words in
GSM8K and MATH problems, and the reason may quote them):

- a verdict is a JSON object with a "score" key (bare, in a code fence or after a preamble; a
  trailing comma is forgiven), or a verdict line: a line that starts with "Score:" and the
  number ("**Score:** 8", "Score: 8/10", "Score: 8 out of 10"), for judges and servers that
  ignore the JSON request;
- the reply must hold exactly one verdict score: two that differ, or none, make it unparseable;
- the score must be on the scale asked for: an integer 0-10 (a denominator, if written, must be
  10). "0.5", "85" or "8/100" are off the scale and unparseable, never guessed at.

An unparseable reply is asked again with a format reminder; after `judge_attempts` the caller
decides what it means (by default: reject). Scores are normalised to [0, 1].
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from qrdistill.errors import BudgetReached
from qrdistill.llm import (
    BackendConfig,
    RequestCache,
    make_backend,
    make_request,
    make_yes_probability_backend,
    run_cached,
)
from qrdistill.llm.budget import Spend
from qrdistill.records import JudgeVerdict, ReasoningPath, Usage

TEMPLATE_SLOTS = ("{question}", "{path}")

DEFAULT_JUDGE_TEMPLATE = """You are reviewing a worked solution. Do not solve the problem \
yourself; judge the steps.

Problem:
{question}

Solution:
{path}

Is every intermediate step sound? Look for invented facts or numbers, steps that do not follow \
from the previous ones, and answers reached by luck or by spurious reasoning.
Reply with only this JSON object, on one line:
{"score": <an integer from 0 to 10, where 10 means every step is sound>, "reason": "<one sentence>"}"""

# For `judge_scoring: probability`: the score is P("Yes") as the judge's next token.
DEFAULT_PROBABILITY_TEMPLATE = """You are reviewing a worked solution. Do not solve the problem \
yourself; judge the steps.

Problem:
{question}

Solution:
{path}

Is every intermediate step sound, with no invented facts or numbers, no step that does not \
follow from the previous ones, and no answer reached by luck? Answer Yes or No."""

FORMAT_REMINDER = (
    '\n\nYour reply must be only the JSON object {"score": N, "reason": "..."} where N is an '
    "integer from 0 to 10 (not a fraction of 1, not a percentage), and nothing else."
)


@dataclass(frozen=True)
class VerdictScale:
    """The scale a verdict's score is asked on: 0 to `top`, whole numbers only if `integer`."""

    top: int
    integer: bool

    def normalise(self, value: str, denominator: str | None = None) -> float | None:
        """The score in [0, 1], or None when it is off this scale."""
        if denominator is not None and float(denominator) != self.top:
            return None
        number = float(value)
        if self.integer and not number.is_integer():
            return None
        return number / self.top if 0 <= number <= self.top else None


# What the default template asks for. The probability backend writes its P("Yes") as a verdict
# line on the 0-1 scale, so both scoring modes share one parser and one cache.
JUDGE_SCALE = VerdictScale(top=10, integer=True)
PROBABILITY_SCALE = VerdictScale(top=1, integer=False)

# For `filter.judge.response_format` on servers with structured output (vLLM, SGLang, OpenAI,
# llama.cpp): the verdict object with its scale, so the server cannot emit anything else.
VERDICT_RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "minimum": 0, "maximum": 10},
                "reason": {"type": "string"},
            },
            "required": ["score", "reason"],
            "additionalProperties": False,
        },
    },
}

_NUMBER = r"(-?\d+(?:\.\d+)?|-?\.\d+)"
# A verdict line: "Score: 8", "**Score:** 8/10", "- Score: 8 out of 10.", "Score: 8 - one step
# is a guess". The number must come right after the label, at the start of the line, and end
# there (a decimal is read whole, so "8.5" is never "8").
_VERDICT_LINE_RE = re.compile(
    r"^[\s>#*_-]*score[\s*_]*[:=][\s*_]*"
    + _NUMBER
    + r"(?:\s*(?:/|out\s+of)\s*"
    + _NUMBER
    + r")?[\s*_]*(?:$|[.,;:)]?\s+(?=\S)|[.,;:)]\s*$|[-\u2013\u2014]\s*)(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_SCORE_TEXT_RE = re.compile(r"^\s*" + _NUMBER + r"(?:\s*(?:/|out\s+of)\s*" + _NUMBER + r")?\s*$")
_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")
_REASON_LINE_RE = re.compile(r"^[\s>#*_-]*reason[\s*_]*:[\s*_]*(.+)$", re.IGNORECASE | re.MULTILINE)


def judge_prompt(template: str, path: ReasoningPath, reminder: bool = False) -> str:
    """The judge reads what students will learn from the path (its answer text, or its
    thinking and answer), while the answer check reads the answer text alone."""
    # `replace`, not `format`: both the question and the path are full of braces (LaTeX, code).
    prompt = template.replace("{question}", path.prompt).replace("{path}", path.learned_text())
    return prompt + FORMAT_REMINDER if reminder else prompt


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _json_verdicts(text: str) -> tuple[list[tuple[object, str]], str]:
    """Every JSON object in `text` with a "score" key, as (raw score, reason), and the text
    with those objects taken out (so a reason that quotes "Score: 3" is no verdict line)."""
    decoder = json.JSONDecoder()
    # Small judges write a trailing comma ('"reason": "...",\n}'); the object is still their verdict.
    text = _TRAILING_COMMA_RE.sub(r"\1", text)
    found, rest, pos = [], [], 0
    start = text.find("{")
    while start != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        score_keys = [k for k in obj if k.lower() == "score"] if isinstance(obj, dict) else []
        if score_keys:
            reason = obj.get("reason", "")
            found.append((obj[score_keys[0]], reason if isinstance(reason, str) else ""))
            rest.append(text[pos:start])
            pos = end
        start = text.find("{", end)
    rest.append(text[pos:])
    return found, "\n".join(rest)


def _json_score(raw: object, scale: VerdictScale) -> float | None:
    if isinstance(raw, bool):  # a JSON true is an int to Python, and no score
        return None
    if isinstance(raw, int | float):
        return scale.normalise(repr(raw))
    match = _SCORE_TEXT_RE.match(raw) if isinstance(raw, str) else None
    return scale.normalise(*match.groups()) if match else None


def parse_verdict(text: str, scale: VerdictScale = JUDGE_SCALE) -> tuple[float, str] | None:
    """(score in [0, 1], one-line reason) from a judge reply's one verdict, or None when the
    reply holds no verdict, two verdicts with different scores, or a score off `scale`."""
    objects, rest = _json_verdicts(text)
    lines = list(_VERDICT_LINE_RE.finditer(rest))
    scores = [_json_score(raw, scale) for raw, _ in objects]
    scores += [scale.normalise(m.group(1), m.group(2)) for m in lines]
    if not scores or None in scores or len(set(scores)) > 1:
        return None
    reasons = [reason for _, reason in objects]
    reasons += [m.group(1) for m in _REASON_LINE_RE.finditer(rest)]
    reasons += [m.group(3) for m in lines]
    reason = next((_one_line(r) for r in reasons if r.strip()), "")
    return scores[0], reason


def judge_paths(
    backend: BackendConfig,
    template: str,
    attempts: int,
    paths: list[ReasoningPath],
    cache: RequestCache,
    show_progress: bool = True,
    scoring: str = "generate",
    spend: Spend | None = None,
) -> dict[str, JudgeVerdict]:
    """A verdict for each path, by path id. Every request goes through `cache`, so judging the
    same paths again (e.g. at another threshold) makes no new calls. With `spend` (a budget),
    judging stops once it is spent (BudgetReached), keeping every finished request.

    scoring "generate": the judge writes a verdict on the 0-10 scale, read by `parse_verdict`.
    scoring "probability": the score is P("Yes") as the judge's next token (local `hf` judges);
    the backend answers with a verdict line on the 0-1 scale, so one parser and cache serve both.
    """
    probability = scoring == "probability"
    make = make_yes_probability_backend if probability else make_backend
    scale = PROBABILITY_SCALE if probability else JUDGE_SCALE
    get_backend = functools.cache(lambda: make(backend))  # made once, only if needed
    verdicts: dict[str, JudgeVerdict] = {}
    last_reply: dict[str, str] = {}
    usage = {p.id: Usage() for p in paths}
    pending = paths
    for attempt in range(attempts):
        requests = {
            p.id: make_request(
                backend,
                judge_prompt(template, p, reminder=attempt > 0),
                attempt,
                f"judge of path {p.id}, attempt {attempt + 1}",
            )
            for p in pending
        }
        results = run_cached(
            list(requests.values()),
            cache,
            get_backend,
            backend=backend,
            desc=f"judge (attempt {attempt + 1})",
            show_progress=show_progress,
            spend=spend,
        )
        if len(results) < len(set(r.key for r in requests.values())):
            _stop_at_budget(spend, paths, verdicts, pending, results, requests)
        unreadable = []
        for path in pending:
            generation = results[requests[path.id].key]
            usage[path.id] = Usage(
                prompt_tokens=usage[path.id].prompt_tokens + generation.prompt_tokens,
                completion_tokens=usage[path.id].completion_tokens + generation.completion_tokens,
                reasoning_tokens=usage[path.id].reasoning_tokens + generation.reasoning_tokens,
            )
            reply = generation.text
            parsed = parse_verdict(reply, scale)
            if parsed is None:
                last_reply[path.id] = reply
                unreadable.append(path)
            else:
                verdicts[path.id] = JudgeVerdict(
                    score=parsed[0],
                    reason=parsed[1],
                    status="ok",
                    attempts=attempt + 1,
                    usage=usage[path.id],
                )
        pending = unreadable
        if not pending:
            break
    for path in pending:
        verdicts[path.id] = JudgeVerdict(
            score=None,
            status="unparseable",
            attempts=attempts,
            reason=_one_line(f"no score in {attempts} replies; last: {last_reply[path.id]!r}"),
            usage=usage[path.id],
        )
    return verdicts


def _stop_at_budget(spend, paths, verdicts, pending, results, requests) -> None:
    judged = len(verdicts) + sum(requests[p.id].key in results for p in pending)
    raise BudgetReached(
        f"filter stopped at the judge's budget: spent {spend.describe()}; {judged} of "
        f"{len(paths)} paths judged (the rest, and any retries, not started); every finished "
        "request is kept in the filter's cache.sqlite. Raise filter.budget.max_usd or "
        "filter.budget.max_total_tokens and run again to continue from here"
    )
