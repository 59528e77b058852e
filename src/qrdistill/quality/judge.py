"""LLM-as-judge: is every intermediate step of a path sound?

The judge is asked for a 0-10 score and a one-line reason. Replies are read leniently ("Score:
8/10", "**Score**: 7", JSON such as {"score": 0.8, "reason": ...}, a bare "0.8") and scores are
normalised to [0, 1]. A reply with no readable score is asked again with a format reminder; the
caller decides what an unreadable verdict means (by default: reject).
"""

from __future__ import annotations

import functools
import json
import re

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
Reply in exactly two lines:
Score: <an integer from 0 to 10, where 10 means every step is sound>
Reason: <one sentence>"""

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
    "\n\nYour reply must start with a line 'Score: N' where N is an integer from "
    "0 to 10, followed by a line 'Reason: ...'."
)

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
# "Score: 8/10", "**Score:** 7 out of 10", "Rating: 7", "score = 0.8", "Score: 80%";
# never the "0" of an echoed "Score: <an integer from 0 to 10>"
_SCORE_RE = re.compile(
    r"\b(?:score|rating)\b[\s*_:=\"'-]*(?:is\s+|of\s+)?"
    + _NUMBER
    + r"\**\s*(?:(?:/|out\s+of)\s*"
    + _NUMBER
    + r")?\s*(%)?",
    re.IGNORECASE,
)
# A reply that is only a score: "8", "0.8", "8/10", "80%"
_BARE_RE = re.compile(
    r"^\s*\**" + _NUMBER + r"\**\s*(?:(?:/|out\s+of)\s*" + _NUMBER + r")?\s*(%)?\s*\.?\s*$",
    re.IGNORECASE,
)
_JSON_RE = re.compile(r"\{[^{}]*\}", re.DOTALL)
_REASON_RE = re.compile(r"\breason\b\W*?:\s*(.+)", re.IGNORECASE)


def judge_prompt(template: str, path: ReasoningPath, reminder: bool = False) -> str:
    # `replace`, not `format`: both the question and the path are full of braces (LaTeX, code).
    prompt = template.replace("{question}", path.prompt).replace("{path}", path.text)
    return prompt + FORMAT_REMINDER if reminder else prompt


def normalise_score(
    value: str, denominator: str | None = None, percent: str | None = None
) -> float | None:
    """A score on the scale it was given in -> [0, 1]; None when it is out of range.

    Without an explicit scale, a decimal of at most 1 is a probability ("0.8"), a number up to 10
    is on the 0-10 scale we ask for ("8", "1"), and a number up to 100 is a percentage.
    """
    number = float(value)
    if denominator is not None:
        scale = float(denominator)
        return number / scale if 0 < scale and number <= scale else None
    if percent or number > 10:
        return number / 100 if number <= 100 else None
    if "." in value and number <= 1:
        return number
    return number / 10


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _from_json(text: str) -> tuple[float, str] | None:
    for match in reversed(list(_JSON_RE.finditer(text))):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        raw = next((obj[k] for k in obj if k.lower() in ("score", "rating", "probability")), None)
        if isinstance(raw, bool) or raw is None:
            continue
        bare = _BARE_RE.match(str(raw))
        score = normalise_score(*bare.groups()) if bare else None
        if score is not None:
            return score, _one_line(str(obj.get("reason", obj.get("explanation", ""))))
    return None


def parse_verdict(text: str) -> tuple[float, str] | None:
    """(score in [0, 1], one-line reason) from a judge reply, or None when there is no score."""
    found = _from_json(text)
    if found is not None:
        return found
    matches = list(_SCORE_RE.finditer(text))
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    match = matches[-1] if matches else _BARE_RE.match(first_line)  # the judge's last word counts
    if match is None:
        return None
    score = normalise_score(*match.groups())
    if score is None:
        return None
    reason = _REASON_RE.search(text)
    if reason:
        return score, _one_line(reason.group(1))
    rest = [line.strip(" .*-:") for line in text.replace(match.group(0), "\n", 1).splitlines()]
    return score, _one_line(next((line for line in rest if line), ""))


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

    scoring "generate": the judge writes a score and a reason, parsed by `parse_verdict`.
    scoring "probability": the score is P("Yes") as the judge's next token (local `hf` judges);
    the backend answers in the same "score + reason" text, so one parser and cache serve both.
    """
    make = make_yes_probability_backend if scoring == "probability" else make_backend
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
            )
            reply = generation.text
            parsed = parse_verdict(reply)
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
