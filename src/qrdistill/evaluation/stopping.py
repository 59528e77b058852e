"""When an answer is complete: stop only where nothing later can change the extracted answer.

One answer rule serves stopping, scoring and the teacher's answer check (`qrdistill.tasks.answers`):
a response's answer is its **last** final-answer statement before the end of its turn. Reasoning
often states a candidate and then checks and corrects it (the backward and tree-of-thought
styles do so by design), so stopping at the first complete statement would score an answer the
model had not ended on. Generation therefore stops only where the response has ended: at EOS, or
once the model opens a new exchange ("Question:", "User:", ...) after a complete final-answer
statement, which `Task.response` cuts off as well. Neither a stop string nor this rule cuts the
answer itself. The predicate runs over the text so far (`qrdistill.models.generate(stop_when=)`).
"""

from __future__ import annotations

from collections.abc import Callable

# Part of each model's prediction fingerprint: answers stopped under an earlier rule (at the first
# complete statement) are not reused as if this rule had made them.
ANSWER_RULE = "last statement before the end of turn"


def stop_for_task(task) -> Callable[[str], bool]:
    """The stop predicate for a `qrdistill.tasks.Task`: True once its response has ended."""
    return lambda text: len(task.response(text)) < len(text)


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
