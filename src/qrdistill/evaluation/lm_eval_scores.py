"""Scores under lm-evaluation-harness's published conventions, next to the project's own score.

Written by us from the rules the harness publishes in its task configs (EleutherAI
lm-evaluation-harness, `lm_eval/tasks/...`), so that a user can set our students' accuracy
against figures other people report. Each convention reads the response proper
(`Task.response`: cut where the model opened a new exchange, as the harness's `until: ["Question:"]`
cuts generation) and compares a string with the gold answer; none of them is symbolic.

- **number answers (GSM8K; task config `gsm8k`):** two filters on the response, then
  `exact_match` with `ignore_case` and `regexes_to_ignore` `","`, `"\\$"`, `"(?s).*#### "`,
  `"\\.$"`, applied in that order to both the extracted string and the gold:
  - `strict_match` ("strict-match"): the *first* match of `#### (\\-?[0-9\\.\\,]+)` (the regex
    filter's default `group_select` is 0), else the fallback "[invalid]";
  - `flexible_extract` ("flexible-extract"): the *last* match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`
    (`group_select: -1`), its non-empty group, stripped.
- **math answers (MATH):** `boxed_exact_match`: the content of the last closed `\\boxed{}` (or
  `\\fbox{}`) equals the gold after removing leading and trailing whitespace and nothing else.
  The harness's Llama-3 MATH tasks (`math_llama`) read the same last box but then apply
  Minerva's `normalize_final_answer` and a sympy equivalence (`minerva_math` reads its "Final
  Answer: The final answer is X" line instead); this is the strict string form of that rule, a
  lower bound on it: "\\frac12" against a gold "0.5" is wrong here.
- **multiple choice (ARC-Challenge, CommonsenseQA, ...):** `letter_match`: the letter of the last
  "best answer is X" statement (the format lm-eval's `arc_challenge_llama` prompt asks for, and
  ours) equals the gold letter; `arc_challenge_llama` compares what follows
  its "The best answer is" prefix, case and punctuation ignored, which for a letter is this.
- **scored by log-likelihood (BoolQ, PIQA, ARC-Challenge; task configs `boolq`, `piqa`,
  `arc_challenge`):** the harness's own default for these tasks, with no generation: each option
  is scored as `target_delimiter` (" ") + the option after the context its `doc_to_text` writes
  ("{passage}\nQuestion: {question}?\nAnswer:" for BoolQ, options "no" / "yes";
  "Question: {question}\nAnswer:" for PIQA and ARC, options their texts), in plain text with no
  chat template. `acc`: the option with the highest log-likelihood is the gold; `acc_norm`
  (PIQA, ARC): the same after dividing each by the option's length in characters. Tokenised as
  the harness's hf model does (`qrdistill.models.continuation_logprobs`), except that the
  tokenizer's default special tokens are kept (the harness adds a BOS only for some models).
- other yes/no, NLI and free-text tasks: no convention (None).

Where ours differ (`qrdistill.tasks.answers`): our number rule prefers the last `\\boxed{}`, then
the last "answer is N" or "#### N", then the last number, and compares with math-verify ("18.00"
equals "18", "1/2" equals "0.5"); strict-match needs "#### ", which our prompts do not ask for,
so it credits only responses that write it anyway. Our math rule is symbolic (math-verify). Our
letter rule also reads "Answer: (B)", an option's text, or a final line that is only a letter;
the first statement is never the answer in ours, while strict-match takes the first "#### ".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qrdistill.records import Example
from qrdistill.tasks import Task
from qrdistill.tasks.answers import clean_text, last_boxed

STRICT_MATCH_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_EXTRACT_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# gsm8k's regexes_to_ignore, in its order: each is removed from both strings before comparing.
GSM8K_IGNORED = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"  # the regex filter's fallback when nothing matches
_BEST_LETTER_RE = re.compile(r"(?i:best answer is)[\s*:(\[]*([A-Z])(?![A-Za-z0-9'])")

# The answer types lm-eval has a convention for (see the module docstring).
SCORED_ANSWER_TYPES = frozenset({"number", "math", "multiple_choice"})


def gsm8k_normalize(text: str) -> str:
    """gsm8k's exact_match preprocessing: its regexes_to_ignore removed in order, lower-cased."""
    for pattern in GSM8K_IGNORED:
        text = re.sub(pattern, "", text)
    return text.lower()


def strict_match(response: str) -> str:
    """The strict-match filter: the first "#### N" number, or "[invalid]"."""
    found = STRICT_MATCH_RE.findall(response)
    return found[0].strip() if found else INVALID


def flexible_extract(response: str) -> str:
    """The flexible-extract filter: the last number-like run, or "[invalid]"."""
    found = FLEXIBLE_EXTRACT_RE.findall(response)
    return next(group for group in found[-1] if group).strip() if found else INVALID


def best_letter(response: str) -> str | None:
    """The letter of the last "best answer is X" statement, or None."""
    found = _BEST_LETTER_RE.findall(clean_text(response))
    return found[-1] if found else None


def lm_eval_scores(
    task: Task, response: str, gold: str, choices: Sequence[str] | None = None
) -> dict[str, bool] | None:
    """Whether `response` is right under each of lm-eval's conventions for the task's answer
    type ({"strict_match": True, "flexible_extract": False}, ...); None without a convention."""
    if task.answer_type not in SCORED_ANSWER_TYPES:
        return None
    text = task.response(response)
    if task.answer_type == "number":
        target = gsm8k_normalize(str(gold))
        return {
            "strict_match": gsm8k_normalize(strict_match(text)) == target,
            "flexible_extract": gsm8k_normalize(flexible_extract(text)) == target,
        }
    if task.answer_type == "math":
        boxed = last_boxed(text)
        return {"boxed_exact_match": boxed is not None and boxed.strip() == str(gold).strip()}
    return {"letter_match": best_letter(text) == task.normalize_gold(gold, choices)}


# The scores a model gets from its log-likelihoods, not from an answer it wrote: an ensemble,
# which picks an answer, has none of them.
LIKELIHOOD_SCORES = frozenset({"acc", "acc_norm"})


@dataclass(frozen=True)
class ChoiceRequest:
    """One question of a task lm-eval scores by log-likelihood (module docstring)."""

    context: str
    options: tuple[str, ...]
    gold: int  # index into options
    length_normalised: bool  # the task's config also reports acc_norm

    def continuations(self) -> list[tuple[str, str]]:
        return [(self.context, " " + option) for option in self.options]


def choice_request(example: Example) -> ChoiceRequest | None:
    """The harness's log-likelihood request for the example's task, or None without one."""
    if example.task == "boolq":
        passage, _, question = example.question.rpartition("\n\nQuestion: ")
        return ChoiceRequest(
            f"{passage}\nQuestion: {question.rstrip('?')}?\nAnswer:",
            ("no", "yes"),
            ("no", "yes").index(str(example.gold).strip().lower()),
            length_normalised=False,
        )
    if example.task in ("piqa", "arc_challenge") and example.choices:
        return ChoiceRequest(
            f"Question: {example.question}\nAnswer:",
            tuple(example.choices),
            ord(str(example.gold).strip().upper()) - ord("A"),
            length_normalised=True,
        )
    return None


def choice_scores(request: ChoiceRequest, logprobs: Sequence[float]) -> dict[str, bool]:
    """`acc` (and `acc_norm`) from each option's log-likelihood."""

    def best(values: Sequence[float]) -> int:
        return max(range(len(values)), key=values.__getitem__)

    scores = {"acc": best(logprobs) == request.gold}
    if request.length_normalised:
        normalised = [lp / len(option) for lp, option in zip(logprobs, request.options)]
        scores["acc_norm"] = best(normalised) == request.gold
    return scores
