"""When an answer is complete: stop after the final-answer line, never inside it.

Every task prompt ends with one line fixing how the answer is stated (`qrdistill.tasks`):
"\\boxed{}" for numbers and math, 'End your response with "The best answer is X."' for multiple
choice, '"The answer is yes."' for yes/no and label sets. Once that statement is written and its
line has ended, anything more is wasted compute (the reference code generated 1024 tokens per
question). A stop string can only cut the text *before* a marker, which would cut the answer
itself, so this is a predicate over the text so far (`qrdistill.models.generate(stop_when=)`).

Each answer type only stops on its own, complete statement: "the answer is" must be followed by
one of the task's labels for yes/no and NLI, and by an upper-case option letter for multiple
choice, so "the answer is not obvious" or "the best answer is a bit unclear" stop nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_STATEMENT = r"\banswer\s+is\s*:?\s*\**\s*"


def _closed_boxed_end(text: str) -> int | None:
    """End index of the first \\boxed{...} whose braces are balanced, or None."""
    start = text.find("\\boxed{")
    if start == -1:
        return None
    depth = 0
    for index in range(start + len("\\boxed"), len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _statement_pattern(answer_type: str, labels: list[str]) -> re.Pattern | None:
    if answer_type == "multiple_choice":
        # (?-i:...): the letter must be upper case although the words match in any case.
        return re.compile(r"\bbest " + _STATEMENT + r"(?-i:\(?[A-Z]\)?)(?!\w)", re.IGNORECASE)
    if answer_type in ("yes_no", "label_set"):
        alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
        return re.compile(_STATEMENT + rf"(?:{alternatives})\b", re.IGNORECASE)
    if answer_type == "exact_match":
        return re.compile(_STATEMENT + r"\S", re.IGNORECASE)
    return None  # number and math answer in \boxed{}


def final_answer_stop(answer_type: str, labels: list[str] = ()) -> Callable[[str], bool]:
    """A predicate: True once the answer type's final statement is written and its line has ended.

    `labels`: every accepted label word of a yes/no or label-set task (e.g. its vocabulary).
    """
    pattern = _statement_pattern(answer_type, list(labels))

    def complete(text: str) -> bool:
        if answer_type in ("number", "math"):
            end = _closed_boxed_end(text)
        else:
            match = pattern.search(text) if pattern else None
            end = match.end() if match else None
        return end is not None and "\n" in text[end:]

    return complete


def stop_for_task(task) -> Callable[[str], bool]:
    """The stop predicate for a `qrdistill.tasks.Task` (its answer type and accepted label words)."""
    return final_answer_stop(task.answer_type, list(task.vocabulary))


LOOP_MIN_REPEATS = 4
LOOP_MIN_CHARS = 48
LOOP_MAX_PERIOD = 64


def looping(text: str) -> bool:
    """True when the text ends in a loop: one chunk (up to 64 characters) repeated at least 4 times
    over at least 48 characters, e.g. '"No"\n\n' again and again. Small base models fall into such
    loops and would otherwise run to `max_new_tokens`; nothing after the first repeat is an answer."""
    for period in range(1, LOOP_MAX_PERIOD + 1):
        repeats = max(LOOP_MIN_REPEATS, -(-LOOP_MIN_CHARS // period))
        span = period * repeats
        if span <= len(text) and text[-span:] == text[-period:] * repeats:
            return True
    return False


def stop_rule(task, after_answer: bool, on_loop: bool) -> Callable[[str], bool] | None:
    """The `stop_when` predicate for a task's answers under the config's switches (None: no rule)."""
    rules = ([stop_for_task(task)] if after_answer else []) + ([looping] if on_loop else [])
    if not rules:
        return None
    return lambda text: any(rule(text) for rule in rules)
