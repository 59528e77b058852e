import math
import random

import pytest

from qrdistill.evaluation.ensemble import CONFIDENCE, VOTE, ensemble_predictions


def row(qid, student, answer, logprob, correct=False, method="m", tokens=10):
    return {
        "question_id": qid,
        "task": "arc_challenge",
        "method": method,
        "student": student,
        "model": f"model-{student}",
        "response": f"{student} says {answer}",
        "answer": answer,
        "correct": correct,
        "mean_logprob": logprob,
        "completion_tokens": tokens,
    }


PREDICTIONS = [
    # q1: two weak votes for B against one confident A.
    # vote -> B (2 votes); confidence -> A: e^-0.1 = 0.905 > e^-0.2 + e^-3 = 0.869.
    row("q1", "s1", "A", -0.1, correct=True),
    row("q1", "s2", "B", -0.2),
    row("q1", "s3", "B", -3.0),
    # q2: one vote each for C and D, s3 abstains; the tie goes to the more confident D.
    row("q2", "s1", "C", -1.0),
    row("q2", "s2", "D", -0.5, correct=True),
    row("q2", "s3", None, None),
    # q3: nobody answers.
    row("q3", "s1", None, -1.0),
    row("q3", "s2", None, -1.0),
    row("q3", "s3", None, None),
    # q4: equal confidence and one vote each: the student listed first wins both.
    row("q4", "s1", "E", -1.0),
    row("q4", "s2", "F", -1.0, correct=True),
    row("q4", "s3", None, None),
    # A method with one student has no ensemble.
    row("q1", "solo", "A", -0.1, method="single"),
]


def by_key(rows):
    return {(r["student"], r["question_id"]): r for r in rows}


def test_vote_and_confidence_outcomes():
    rows = by_key(ensemble_predictions(PREDICTIONS))
    assert {
        (r["student"], r["question_id"]): (r["answer"], r["correct"]) for r in rows.values()
    } == {
        (VOTE, "q1"): ("B", False),
        (CONFIDENCE, "q1"): ("A", True),
        (VOTE, "q2"): ("D", True),
        (CONFIDENCE, "q2"): ("D", True),
        (VOTE, "q3"): (None, False),
        (CONFIDENCE, "q3"): (None, False),
        (VOTE, "q4"): ("E", False),
        (CONFIDENCE, "q4"): ("E", False),
    }


def test_ensemble_row_fields():
    rows = by_key(ensemble_predictions(PREDICTIONS))
    vote_q1 = rows[(VOTE, "q1")]
    # The most confident voter for the winning answer (s2) speaks for the ensemble.
    assert vote_q1["response"] == "s2 says B"
    assert vote_q1["mean_logprob"] == -0.2
    assert vote_q1["completion_tokens"] == 30  # what the three members cost
    assert vote_q1["model"] == "model-s1+model-s2+model-s3"
    assert (vote_q1["method"], vote_q1["task"]) == ("m", "arc_challenge")
    assert all(r["method"] == "m" for r in rows.values())


def test_confidence_weights_are_probabilities():
    # Three students: answer G twice at log-prob -2 (2 * 0.135 = 0.271) vs H once at -1.2 (0.301).
    rows = [row("q", "a", "G", -2.0), row("q", "b", "G", -2.0), row("q", "c", "H", -1.2)]
    assert 2 * math.exp(-2.0) < math.exp(-1.2)
    result = by_key(ensemble_predictions(rows))
    assert result[(VOTE, "q")]["answer"] == "G"
    assert result[(CONFIDENCE, "q")]["answer"] == "H"


def test_existing_ensemble_rows_are_not_members():
    rows = ensemble_predictions(PREDICTIONS)
    assert len(ensemble_predictions(PREDICTIONS + rows)) == len(rows)


def test_equivalent_math_answers_vote_together():
    """'0.5', '\\frac12' and '\\frac{1}{2}' are one answer: as strings they would split 1-1-1
    and lose to the two students who said 2."""
    answers = [("s1", "0.5", True), ("s2", "\\frac12", True), ("s3", "2", False)]
    answers += [("s4", "\\frac{1}{2}", True), ("s5", "2", False)]
    members = [
        {**row("q1", s, a, -1.0, correct=c), "task": "gsm8k", "method": "m"} for s, a, c in answers
    ]
    rows = by_key(ensemble_predictions(members))
    assert rows[(VOTE, "q1")]["correct"] is True
    assert rows[(VOTE, "q1")]["answer"] == "0.5"  # the most confident voter's own answer


@pytest.mark.parametrize("seed", range(5))
def test_different_math_answers_stay_apart(seed):
    """The null twin: close but unequal answers never merge, whatever the order of the students;
    five lone votes at equal confidence go to the student listed first."""
    answers = [("a", "\\frac13"), ("b", "0.3"), ("c", "0.33"), ("d", "3"), ("e", "\\frac{3}{100}")]
    random.Random(seed).shuffle(answers)
    members = [{**row("q1", s, a, -1.0), "task": "math", "method": "m"} for s, a in answers]
    vote = by_key(ensemble_predictions(members))[(VOTE, "q1")]
    assert vote["answer"] == answers[0][1]


def test_an_ensemble_keeps_its_winners_answer_scores_but_no_log_likelihood_ones():
    members = [
        {**row("q1", "s1", "B", -0.1), "lm_eval": {"letter_match": True, "acc": False}},
        {**row("q1", "s2", "B", -0.5), "lm_eval": {"letter_match": False, "acc": True}},
    ]
    rows = by_key(ensemble_predictions(members))
    # s1, the more confident voter for B, speaks for both ensembles: its letter score, and no
    # acc (that is its model's likeliest option, not something the ensemble answered).
    assert rows[(VOTE, "q1")]["lm_eval"] == {"letter_match": True}
    assert rows[(CONFIDENCE, "q1")]["lm_eval"] == {"letter_match": True}
    only_acc = [{**m, "lm_eval": {"acc": True}} for m in members]
    assert by_key(ensemble_predictions(only_acc))[(VOTE, "q1")]["lm_eval"] is None
