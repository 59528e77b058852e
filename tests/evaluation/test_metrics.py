import random

import pytest

from qrdistill.evaluation.metrics import (
    holm_adjust,
    mcnemar_detectable_difference,
    mcnemar_exact,
    mcnemar_sample_size,
    mean_with_interval,
    paired_bootstrap_interval,
    paired_comparisons,
    summarize,
    wilson_interval,
)


@pytest.mark.parametrize(
    "correct, n, low, high",
    [
        (5, 10, 0.236593, 0.763407),
        (0, 10, 0.0, 0.277533),  # upper bound z^2 / (n + z^2)
        (10, 10, 0.722467, 1.0),  # lower bound n / (n + z^2)
        (1, 1, 0.206549, 1.0),
        (81, 263, 0.255289, 0.366210),
    ],
)
def test_wilson_interval_known_values(correct, n, low, high):
    assert wilson_interval(correct, n) == pytest.approx((low, high), abs=1e-6)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_summarize_groups_by_method_student_task():
    rows = [
        {"method": "m", "student": "a", "task": "gsm8k", "correct": c}
        for c in (True, False, True, True)
    ]
    rows += [{"method": "m", "student": "b", "task": "gsm8k", "correct": False}]
    summary = summarize(rows)
    assert [
        (r["method"], r["student"], r["task"], r["n"], r["correct"], r["accuracy"]) for r in summary
    ] == [("m", "a", "gsm8k", 4, 3, 0.75), ("m", "b", "gsm8k", 1, 0, 0.0)]
    assert (summary[0]["ci_low"], summary[0]["ci_high"]) == pytest.approx(wilson_interval(3, 4))


def test_summarize_gives_the_accuracy_under_each_lm_eval_convention():
    scores = [(True, True), (False, True), (False, False), (False, True)]
    rows = [
        {
            "method": "m",
            "student": "a",
            "task": "gsm8k",
            "correct": flexible,
            "lm_eval": {"strict_match": strict, "flexible_extract": flexible},
        }
        for strict, flexible in scores
    ]
    rows += [
        {"method": "m", "student": "a", "task": "strategyqa", "correct": True, "lm_eval": None}
    ]
    # An ensemble no student answered has no scores: wrong under every convention.
    rows += [
        {"method": "m", "student": "ensemble:vote", "task": "math", "correct": c, "lm_eval": s}
        for c, s in ((True, {"boxed_exact_match": False}), (False, None))
    ]
    by_group = {(r["student"], r["task"]): r["lm_eval"] for r in summarize(rows)}
    assert by_group == {
        ("a", "gsm8k"): {"strict_match": 0.25, "flexible_extract": 0.75},
        ("a", "strategyqa"): None,
        ("ensemble:vote", "math"): {"boxed_exact_match": 0.0},
    }


@pytest.mark.parametrize(
    "only_a, only_b, p",
    [
        (0, 0, 1.0),  # no discordant question: no evidence either way
        (3, 3, 1.0),
        (1, 5, 0.21875),  # 2 * (C(6,0) + C(6,1)) / 2^6 = 14 / 64
        (2, 10, 0.0385742188),  # 2 * (1 + 12 + 66) / 4096
        (0, 10, 0.001953125),  # 2 / 2^10
        (25, 10, 0.0166738478),  # scipy.stats.binomtest(10, 35).pvalue
    ],
)
def test_mcnemar_exact_known_values(only_a, only_b, p):
    assert mcnemar_exact(only_a, only_b) == pytest.approx(p, rel=1e-6)
    assert mcnemar_exact(only_b, only_a) == pytest.approx(p, rel=1e-6)


def test_identical_methods_differ_by_zero_with_p_one():
    outcomes = [True, False, True, True, False] * 8
    rows = [
        {"method": m, "student": "s", "task": "t", "question_id": f"q{i}", "correct": c}
        for m in ("qr_distill", "copy")
        for i, c in enumerate(outcomes)
    ]
    [row] = paired_comparisons(rows)
    assert (row["method"], row["reference"], row["n"]) == ("copy", "qr_distill", 40)
    assert (row["difference"], row["ci_low"], row["ci_high"], row["p_mcnemar"]) == (0, 0, 0, 1)
    assert (row["only_method"], row["only_reference"]) == (0, 0)


def test_paired_comparisons_join_on_question_and_skip_without_reference():
    rows = [
        {"method": "qr_distill", "student": "s", "task": "t", "question_id": "a", "correct": True},
        {"method": "qr_distill", "student": "s", "task": "t", "question_id": "b", "correct": False},
        # Another order, and one question the reference did not answer.
        {"method": "sft", "student": "s", "task": "t", "question_id": "c", "correct": True},
        {"method": "sft", "student": "s", "task": "t", "question_id": "b", "correct": True},
        {"method": "sft", "student": "s", "task": "t", "question_id": "a", "correct": True},
        {"method": "sft", "student": "other", "task": "t", "question_id": "a", "correct": True},
    ]
    [row] = paired_comparisons(rows)
    assert (row["student"], row["n"], row["difference"]) == ("s", 2, 0.5)
    assert (row["only_method"], row["only_reference"], row["p_mcnemar"]) == (1, 0, 1.0)
    assert paired_comparisons(rows, reference="absent") == []
    assert row["lm_eval"] == {}  # no convention on either side


def test_paired_rows_carry_the_difference_under_each_lm_eval_convention_both_sides_have():
    def row(method, q, correct, lm_eval):
        return {
            "method": method,
            "student": "s",
            "task": "arc_challenge",
            "question_id": q,
            "correct": correct,
            "lm_eval": lm_eval,
        }

    rows = [
        row("qr_distill", "a", True, {"letter_match": True, "acc": False}),
        row("qr_distill", "b", True, {"letter_match": True, "acc": False}),
        row("qr_distill", "c", False, {"letter_match": False, "acc": True}),
        row("sft", "a", True, {"letter_match": False, "acc": True}),
        row("sft", "b", False, {"letter_match": False, "acc": True}),
        row("sft", "c", False, {"letter_match": False, "acc_norm": True}),  # no acc here
    ]
    [paired] = paired_comparisons(rows, resamples=200)
    assert paired["difference"] == pytest.approx(-1 / 3)  # ours: 1 of 3 against 2 of 3
    conventions = paired["lm_eval"]
    assert set(conventions) == {"acc", "letter_match"}  # acc_norm: one side only
    assert conventions["letter_match"]["n"] == 3
    assert conventions["letter_match"]["difference"] == pytest.approx(-2 / 3)
    assert (conventions["acc"]["n"], conventions["acc"]["difference"]) == (2, 1.0)
    assert conventions["acc"]["ci_low"] <= 1.0 <= conventions["acc"]["ci_high"]


def test_paired_bootstrap_interval_covers_the_true_difference():
    # Two methods whose true accuracies differ by 0.10, with correlated (paired) outcomes: the
    # 95 % interval should cover 0.10 in about 95 % of repetitions; checked over 40 (seeded).
    rng = random.Random(1)
    covered = 0
    for rep in range(40):
        a, b = [], []
        for _ in range(400):
            u = rng.random()
            a.append(u < 0.6)
            b.append(u < 0.5)  # b right implies a right: difference exactly 0.10 in expectation
        low, high = paired_bootstrap_interval(a, b, resamples=2000, seed=rep)
        assert low <= sum(a) / 400 - sum(b) / 400 <= high
        covered += low <= 0.10 <= high
    assert covered >= 34  # P(Binomial(40, 0.95) < 34) < 0.01


def test_paired_bootstrap_is_seeded_and_checks_lengths():
    a, b = [True, False, True, True], [False, False, True, False]
    assert paired_bootstrap_interval(a, b, seed=3) == paired_bootstrap_interval(a, b, seed=3)
    with pytest.raises(ValueError):
        paired_bootstrap_interval(a, b[:3])


def test_mcnemar_sample_size_known_values():
    # (1.959964 sqrt(0.15) + 0.841621 sqrt(0.1475))^2 / 0.05^2 = 468.5 -> 469
    assert mcnemar_sample_size(0.05, 0.15) == 469
    assert mcnemar_sample_size(0.05, 0.20) == 626
    assert mcnemar_detectable_difference(469, 0.15) == pytest.approx(0.05, abs=2e-4)
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.2, 0.1)  # a difference larger than the discordant share


def test_holm_adjust_known_values():
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm_adjust([]) == []


def _many_comparisons(seed: int, planted: float) -> list[dict]:
    """Ten methods against qr_distill on 200 questions, all at 60% accuracy and independent,
    except method "planted" which is right `planted` more often."""
    rng = random.Random(seed)
    rows = []
    for method in ["qr_distill", "planted"] + [f"null{i}" for i in range(9)]:
        accuracy = 0.6 + (planted if method == "planted" else 0.0)
        rows += [
            {
                "method": method,
                "student": "s",
                "task": "t",
                "question_id": f"q{i}",
                "correct": rng.random() < accuracy,
            }
            for i in range(200)
        ]
    return paired_comparisons(rows, resamples=200)


def test_holm_keeps_the_family_wise_error_under_control():
    """Null: no method differs. Uncorrected, some p < 0.05 turns up in many seeds; Holm-adjusted,
    in at most the 5% the correction promises (2 of 40 seeds, with binomial slack)."""
    raw, holm = 0, 0
    for seed in range(40):
        rows = _many_comparisons(seed, planted=0.0)
        raw += any(r["p_mcnemar"] < 0.05 for r in rows)
        holm += any(r["p_holm"] < 0.05 for r in rows)
        assert all(r["p_holm"] >= r["p_mcnemar"] for r in rows)
    assert holm <= 4 and raw >= 3 * max(holm, 1)


def test_holm_still_finds_a_planted_difference():
    for seed in range(10):
        rows = {r["method"]: r for r in _many_comparisons(seed, planted=0.25)}
        assert rows["planted"]["p_holm"] < 0.05


def test_mean_over_tasks_adds_the_interval_half_widths_in_quadrature():
    mean, low, high = mean_with_interval([0.5, 0.7], [0.4, 0.5], [0.6, 0.8])
    assert mean == pytest.approx(0.6)
    assert mean - low == pytest.approx((0.1**2 + 0.2**2) ** 0.5 / 2)
    assert high - mean == pytest.approx((0.1**2 + 0.1**2) ** 0.5 / 2)
    # One task: its own interval; at 0 the lower side stays at 0.
    assert mean_with_interval([0.3], [0.1], [0.6]) == pytest.approx((0.3, 0.1, 0.6))
    assert mean_with_interval([0.0, 0.0], [0.0, 0.0], [0.5, 0.5])[1] == 0.0
    with pytest.raises(ValueError):
        mean_with_interval([0.5], [0.4, 0.4], [0.6])


def test_mean_over_tasks_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Two tasks of 200 questions at true accuracies 0.3 and 0.7, with Wilson intervals: the
    combined interval of the mean should cover 0.5 in about 95% of 2,000 draws."""
    rng = random.Random(0)
    covered = 0
    for _ in range(2000):
        counts = [sum(rng.random() < p for _ in range(200)) for p in (0.3, 0.7)]
        intervals = [wilson_interval(c, 200) for c in counts]
        _, low, high = mean_with_interval(
            [c / 200 for c in counts], [i[0] for i in intervals], [i[1] for i in intervals]
        )
        covered += low <= 0.5 <= high
    assert 0.93 <= covered / 2000 <= 0.97
