"""Symbolic equivalence of two math answers with math-verify, safe to call from any thread.

math-verify's own timeouts use `signal.alarm`, which raises in any thread but the main one (and
would also clobber other alarms, such as pytest-timeout's). So we switch its timeouts off
(`parsing_timeout=None`, `timeout_seconds=None`) and guard the whole comparison ourselves: it runs
in a short-lived daemon thread and we wait at most `timeout_s` for it. Python cannot kill a
thread, so a comparison that times out keeps running in the background until sympy gives up; the
answer is counted as wrong and a warning is logged. Such pathological inputs are rare (huge
exponents, deeply nested expressions), so one thread per comparison costs nothing in practice.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its timeout is off; ours is on (see module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def _as_latex(answer: str) -> str:
    """Wrap an extracted answer in `$...$` so math-verify reads it as one LaTeX expression."""
    answer = answer.strip()
    return answer if answer.startswith("$") else f"${answer}$"


def _verify(gold: str, answer: str) -> bool:
    from math_verify import parse, verify  # sympy import is slow; only pay it when needed

    gold_parsed = parse(_as_latex(gold), parsing_timeout=None)
    answer_parsed = parse(_as_latex(answer), parsing_timeout=None)
    if not gold_parsed or not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))


def math_equal(answer: str | None, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when `answer` and `gold` are the same mathematical object (within `timeout_s`)."""
    if answer is None or not answer.strip():
        return False
    if answer.strip() == gold.strip():
        return True
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(_verify(gold, answer))
        except Exception:  # noqa: BLE001 - an unparseable answer is simply not correct
            logger.debug("math-verify failed on %r vs %r", answer, gold, exc_info=True)
            outcome.append(False)

    worker = threading.Thread(target=run, name="math-verify", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        logger.warning(
            "math-verify took over %.1f s comparing %r with gold %r; counted as wrong",
            timeout_s,
            answer[:80],
            gold[:80],
        )
        return False
    return outcome[0]
