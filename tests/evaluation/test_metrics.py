import pytest

from qrdistill.evaluation.metrics import summarize, wilson_interval


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
