"""Ensembles across the students of one method: an extra, reported apart from single students.

Both ensembles pick one of the students' extracted answers per question. Answers are compared
as the task compares an answer with the gold one (`Task.equivalent`): symbolically for number and
math, so "0.5" and "\\frac12" are one answer and vote together; as normalised strings otherwise.
Each answer joins the first earlier answer it is equivalent to:
- vote: the answer most students gave; a tie goes to the answer whose most confident voter has the
  highest mean log-probability, then to the student listed first;
- confidence: each student's answer is weighted by exp(mean log-probability), the geometric mean
  probability of its tokens (length-normalised, so long answers are not penalised); the answer
  with the largest total weight wins, a tie goes to the student listed first.
A student without an answer abstains. The ensemble row copies the response and correctness (ours
and lm-eval's conventions') of the winning answer's most confident voter and counts the tokens of all members (what it cost).
"""

from __future__ import annotations

import math

from qrdistill.evaluation.lm_eval_scores import LIKELIHOOD_SCORES
from qrdistill.records import Prediction
from qrdistill.tasks import get_task

VOTE = "ensemble:vote"
CONFIDENCE = "ensemble:confidence"


def is_ensemble(student: str) -> bool:
    return student.startswith("ensemble:")


def _confidence(row: dict) -> float:
    return math.exp(row["mean_logprob"]) if row.get("mean_logprob") is not None else 0.0


def _combine(rows: list[dict], kind: str) -> dict:
    task = get_task(rows[0]["task"])
    voters: dict[str, list[int]] = {}  # an answer -> positions of the students who gave it
    for position, row in enumerate(rows):
        if row.get("answer") is None:
            continue
        answer = str(row["answer"]).strip()
        same = next((known for known in voters if task.equivalent(answer, known)), answer)
        voters.setdefault(same, []).append(position)

    def best_voter(answer: str) -> int:
        return max(voters[answer], key=lambda p: (_confidence(rows[p]), -p))

    if kind == VOTE:

        def rank(answer):
            return len(voters[answer]), _confidence(rows[best_voter(answer)]), -min(voters[answer])
    else:

        def rank(answer):
            return sum(_confidence(rows[p]) for p in voters[answer]), -min(voters[answer])

    first = rows[0]
    winner = rows[best_voter(max(voters, key=rank))] if voters else {}
    return Prediction(
        question_id=first["question_id"],
        task=first["task"],
        method=first["method"],
        student=kind,
        model="+".join(row["model"] for row in rows),
        response=winner.get("response", ""),
        answer=winner.get("answer"),
        correct=bool(winner.get("correct", False)),
        mean_logprob=winner.get("mean_logprob"),
        completion_tokens=sum(row.get("completion_tokens") or 0 for row in rows),
        # The winner's answer-based lm-eval scores; its log-likelihood ones are its model's.
        lm_eval={
            k: v for k, v in (winner.get("lm_eval") or {}).items() if k not in LIKELIHOOD_SCORES
        }
        or None,
    ).row()


def ensemble_predictions(predictions: list[dict]) -> list[dict]:
    """Vote and confidence rows for every (method, question) answered by two or more students."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in predictions:
        if not is_ensemble(row["student"]):
            groups.setdefault((row["method"], row["question_id"]), []).append(row)
    rows = []
    for kind in (VOTE, CONFIDENCE):
        rows += [_combine(members, kind) for members in groups.values() if len(members) >= 2]
    return rows
