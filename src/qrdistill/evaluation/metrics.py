"""Accuracy with a 95% Wilson score interval, per (method, student, task)."""

from __future__ import annotations

import math
from collections.abc import Iterable

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n correct,
    which small test sets hit often.
    """
    if n <= 0:
        raise ValueError("the interval needs at least one question (n > 0)")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in [0, n]; got correct={correct}, n={n}")
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def summarize(predictions: Iterable[dict]) -> list[dict]:
    """One summary row per (method, student, task), in the order the groups first appear."""
    groups: dict[tuple[str, str, str], list[bool]] = {}
    for row in predictions:
        groups.setdefault((row["method"], row["student"], row["task"]), []).append(
            bool(row["correct"])
        )
    summary = []
    for (method, student, task), outcomes in groups.items():
        n, correct = len(outcomes), sum(outcomes)
        low, high = wilson_interval(correct, n)
        summary.append(
            {
                "method": method,
                "student": student,
                "task": task,
                "n": n,
                "correct": correct,
                "accuracy": correct / n,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return summary
