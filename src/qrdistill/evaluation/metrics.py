"""Accuracy with a 95% Wilson score interval, per (method, student, task); paired comparisons of
methods on the same questions (bootstrap interval of the difference, exact McNemar test, Holm's
correction over all of a run's comparisons); the sample size such a comparison needs; the mean
over tasks with its interval; mean and sd over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from statistics import NormalDist

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
    """One summary row per (method, student, task), in the order the groups first appear.

    `lm_eval`: the accuracy under each of lm-evaluation-harness's conventions the rows carry
    (`lm_eval_scores`), over all n questions (a row without that score, such as an ensemble
    that no student answered, counts as wrong); None when no row has one."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in predictions:
        groups.setdefault((row["method"], row["student"], row["task"]), []).append(row)
    summary = []
    for (method, student, task), rows in groups.items():
        n, correct = len(rows), sum(bool(row["correct"]) for row in rows)
        low, high = wilson_interval(correct, n)
        scored = [row.get("lm_eval") or {} for row in rows]
        conventions = list(dict.fromkeys(name for scores in scored for name in scores))
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
                "lm_eval": {
                    name: sum(bool(scores.get(name)) for scores in scored) / n
                    for name in conventions
                }
                or None,
            }
        )
    return summary


# --------------------------------------------------------------------------- paired comparisons
# Every method answers the same test questions, so two methods are compared question by question:
# the difference of their accuracies with a paired-bootstrap interval, and McNemar's exact test on
# the questions where exactly one of them is right. Paired, a difference of a few points can be
# told from chance at a few hundred questions; two independent Wilson intervals cannot.

REFERENCE_METHOD = "qr_distill"
BOOTSTRAP_RESAMPLES = 10_000


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under no difference each discordant question is a fair
    coin, so p = P(|Binomial(d, 1/2) - d/2| >= |only_a - d/2|), d = only_a + only_b (1.0 at d = 0).
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0; got {only_a}, {only_b}")
    d = only_a + only_b
    k = min(only_a, only_b)
    # Summed as exact integers: the tail of Binomial(d, 1/2) up to k, doubled by symmetry.
    tail = sum(math.comb(d, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**d)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest p times the
    number of hypotheses not yet rejected (m - i + 1), kept non-decreasing, capped at 1. Rejecting
    where the adjusted p is below alpha controls the family-wise error rate at alpha for any
    dependence between the tests (here: every method, student and task against one reference)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_bootstrap_interval(
    a: Sequence[bool],
    b: Sequence[bool],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of accuracy(a) - accuracy(b), resampling question indices (the same
    indices for both, which keeps the pairing)."""
    import numpy as np

    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired outcomes need the same, non-zero length; got {len(a)}, {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # In chunks: a (resamples x n) index matrix for n in the thousands would be large.
    chunk = max(1, 2_000_000 // len(diff))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = diff[rng.integers(0, len(diff), (stop - start, len(diff)))].mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_comparison(
    a: Sequence[bool], b: Sequence[bool], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """Method a against method b on the same questions (outcomes in the same question order)."""
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b))
    low, high = paired_bootstrap_interval(a, b, resamples, seed)
    return {
        "n": len(a),
        "difference": (sum(map(bool, a)) - sum(map(bool, b))) / len(a),
        "ci_low": low,
        "ci_high": high,
        "only_method": only_a,
        "only_reference": only_b,
        "p_mcnemar": mcnemar_exact(only_a, only_b),
    }


def paired_comparisons(
    predictions: Iterable[dict],
    reference: str = REFERENCE_METHOD,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> list[dict]:
    """Each method against `reference`, per (student, task), on the questions both answered: one
    row per (method, student, task), in the order the groups first appear; [] without the
    reference. Positive differences favour the method. `p_holm` is McNemar's p adjusted by Holm
    over every row: the table makes many comparisons, and some small p among them is expected
    by chance alone. `lm_eval`: the difference under each of lm-evaluation-harness's conventions
    both methods carry (`lm_eval_scores`), with its interval, so a difference can be set against
    published ones."""
    outcomes: dict[tuple[str, str, str], dict[str, bool]] = {}
    conventions: dict[tuple[str, str, str], dict[str, dict[str, bool]]] = {}
    for row in predictions:
        key = (row["method"], row["student"], row["task"])
        outcomes.setdefault(key, {})[row["question_id"]] = bool(row["correct"])
        for name, right in (row.get("lm_eval") or {}).items():
            conventions.setdefault(key, {}).setdefault(name, {})[row["question_id"]] = right
    rows = []
    for (method, student, task), mine in outcomes.items():
        theirs = outcomes.get((reference, student, task))
        if method == reference or theirs is None:
            continue
        shared = [q for q in mine if q in theirs]
        if not shared:
            continue
        rows.append(
            {
                "method": method,
                "reference": reference,
                "student": student,
                "task": task,
                **paired_comparison(
                    [mine[q] for q in shared], [theirs[q] for q in shared], resamples, seed
                ),
                "lm_eval": _paired_conventions(
                    conventions.get((method, student, task), {}),
                    conventions.get((reference, student, task), {}),
                    shared,
                    resamples,
                    seed,
                ),
            }
        )
    for row, adjusted in zip(rows, holm_adjust([row["p_mcnemar"] for row in rows])):
        row["p_holm"] = adjusted
    return rows


def _paired_conventions(
    mine: dict[str, dict[str, bool]],
    theirs: dict[str, dict[str, bool]],
    shared: list[str],
    resamples: int,
    seed: int,
) -> dict[str, dict]:
    """{convention: difference, ci_low, ci_high} on the shared questions both sides scored."""
    found = {}
    for name in mine.keys() & theirs.keys():
        both = [q for q in shared if q in mine[name] and q in theirs[name]]
        if both:
            row = paired_comparison(
                [mine[name][q] for q in both], [theirs[name][q] for q in both], resamples, seed
            )
            found[name] = {k: row[k] for k in ("n", "difference", "ci_low", "ci_high")}
    return dict(sorted(found.items()))


def mcnemar_sample_size(
    difference: float, discordant: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Questions needed for a two-sided McNemar test at `alpha` to detect an accuracy difference
    `difference` with `power`, when a share `discordant` of questions is answered right by exactly
    one of the two methods (Connor 1987, the normal approximation the exact test tracks closely):
    n = (z_{1-alpha/2} sqrt(p_d) + z_power sqrt(p_d - delta^2))^2 / delta^2."""
    if not 0 < abs(difference) <= discordant <= 1:
        raise ValueError(
            f"need 0 < |difference| <= discordant <= 1; got {difference}, {discordant}"
        )
    normal = NormalDist()
    z_alpha, z_power = normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)
    root = z_alpha * math.sqrt(discordant) + z_power * math.sqrt(discordant - difference**2)
    return math.ceil(root**2 / difference**2)


def mcnemar_detectable_difference(
    n: int, discordant: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest difference `mcnemar_sample_size` says n questions detect (by bisection)."""
    low, high = 1e-6, discordant
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (
            (mid, high) if mcnemar_sample_size(mid, discordant, alpha, power) > n else (low, mid)
        )
    return high


# --------------------------------------------------------------------------- across tasks
def mean_with_interval(
    values: Sequence[float], lows: Sequence[float], highs: Sequence[float]
) -> tuple[float, float, float]:
    """The unweighted mean of T accuracies measured on independent test sets (the paper's
    average over tasks) and a 95% interval for it from theirs: each side's half-widths added in
    quadrature and divided by T, as the variance of a mean of independent estimates is the sum
    of their variances over T^2. Built from Wilson intervals it keeps their asymmetry near 0 and
    1; it is a normal approximation around them, clipped to [0, 1]."""
    if not values or not len(values) == len(lows) == len(highs):
        raise ValueError("need one interval per value, and at least one value")
    t = len(values)
    mean = statistics.fmean(values)
    below = math.sqrt(sum((v - lo) ** 2 for v, lo in zip(values, lows))) / t
    above = math.sqrt(sum((hi - v) ** 2 for v, hi in zip(values, highs))) / t
    return mean, max(0.0, mean - below), min(1.0, mean + above)


# --------------------------------------------------------------------------- across seeds
def across_seeds(per_seed: list[list[dict]], value: str) -> list[dict]:
    """Rows of a run repeated under several seeds (one list of summary.json or paired.json rows
    per seed) as one row per (method, student, task): `value`'s mean, sample sd (None for one
    seed) and the per-seed values, plus the per-seed p_mcnemar where the rows carry it. A group
    missing from some seed has fewer values; `seeds` says how many."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for rows in per_seed:
        for row in rows:
            groups.setdefault((row["method"], row["student"], row["task"]), []).append(row)
    out = []
    for (method, student, task), rows in groups.items():
        values = [row[value] for row in rows]
        summary = {
            "method": method,
            "student": student,
            "task": task,
            "seeds": len(values),
            "n": rows[0]["n"],
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "values": values,
        }
        if "p_mcnemar" in rows[0]:
            summary["reference"] = rows[0]["reference"]
            summary["p_mcnemar"] = [row["p_mcnemar"] for row in rows]
        out.append(summary)
    return out
