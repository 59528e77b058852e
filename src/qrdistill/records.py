"""The records that flow between stages, as they are stored on disk. Torch-free.

- `Example` (data/*.jsonl): a question with its gold answer; every data source becomes these.
- `ReasoningPath` (generate/paths.jsonl, filter/{judged,kept}.jsonl): one teacher path, with its
  `Usage`, and after the quality stage its `JudgeVerdict` and `kept`.
- `RevThinkTriple` (generate/revthink.jsonl, when a run trains `revthink`): a question's backward
  question, backward reasoning and the teacher's consistency verdict.
- `Generation`: one completion from a model (`qrdistill.llm`), as the request cache stores it.
- `Prediction` (evaluate/predictions.jsonl): one model's answer to one test question; the
  ensembles write the same row with `student` "ensemble:vote" / "ensemble:confidence".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Example(BaseModel):
    """A question with its gold answer.

    `gold` is the answer as stored in the data set, in the form the task's verifier expects:
    a number or LaTeX expression (math), a choice label such as "B" (multiple choice),
    "yes"/"no", an NLI label, or free text.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str
    question: str
    choices: list[str] | None = None
    gold: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0  # every output token billed, reasoning tokens included
    reasoning_tokens: int = 0  # of completion_tokens, those the server reports as reasoning


class JudgeVerdict(BaseModel):
    """The judge's verdict on a path. `score` in [0, 1] (probability the steps are sound), or None
    when no parseable verdict could be obtained (`status` says why). `usage`: the judge's tokens
    for this path, over all its attempts."""

    score: float | None = None
    reason: str = ""
    status: Literal["ok", "unparseable", "error", "skipped"] = "ok"
    attempts: int = 0
    usage: Usage = Field(default_factory=Usage)


class ReasoningPath(BaseModel):
    """A teacher reasoning path: the record that flows from generation through filtering to training."""

    model_config = ConfigDict(extra="forbid")

    id: str  # "{question_id}::{style}::{sample_index}"
    question_id: str
    task: str
    style: str
    sample_index: int = 0
    prompt: str  # the task's base prompt for the question; students are trained on it
    gold: str
    text: str  # the teacher's answer text (its reply without the thinking)
    # A reasoning teacher's thinking, kept apart from `text` (qrdistill.llm.thinking); "" if none.
    thinking: str = ""
    # What students learn from this path (`generate.reasoning`): "answer" is `text`;
    # "thinking_and_answer" is the thinking, then `text` (`learned_text`).
    learn: Literal["answer", "thinking_and_answer"] = "answer"
    answer: str | None = None  # the answer extracted from `text` by the task's verifier
    correct: bool = False
    usage: Usage = Field(default_factory=Usage)
    backend: str = ""
    model: str = ""
    judge: JudgeVerdict | None = None  # set by the quality stage
    kept: bool | None = None  # set by the quality stage

    @staticmethod
    def make_id(question_id: str, style: str, sample_index: int) -> str:
        return f"{question_id}::{style}::{sample_index}"

    def learned_text(self) -> str:
        """What students learn, as plain text: what the judge reads and the router embeds.
        Training writes the thinking in each student's own format where it has one
        (`qrdistill.training.data.student_response`); this is the plain tagged block."""
        if self.learn == "thinking_and_answer" and self.thinking:
            return tagged_block(self.thinking, self.text)
        return self.text


# The plain block a thinking is learned in by students whose chat template has no thinking format.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def tagged_block(thinking: str, answer: str) -> str:
    return f"{THINK_OPEN}\n{thinking}\n{THINK_CLOSE}\n\n{answer}"


# Beside paths.jsonl in the generate stage's folder; written when a run's methods include revthink.
REVTHINK_FILE = "revthink.jsonl"


class RevThinkTriple(BaseModel):
    """RevThink's teacher data for one question (docs/METHOD.md, "RevThink"): the backward question
    it posed from the question's answer, its reasoning answering that question, and its check of
    the two against the original question and answer. The forward reasoning is the question's
    path in paths.jsonl. Training keeps a triple only when `consistent` is True."""

    model_config = ConfigDict(extra="forbid")

    question_id: str
    task: str
    prompt: str  # the task's base prompt for the original question
    gold: str
    backward_question: str
    backward_reasoning: str
    consistency: str  # the teacher's reply to the consistency check
    consistent: bool | None  # its verdict; None when the reply holds none
    usage: dict[str, Usage]  # per request: backward_question, backward_reasoning, consistency


@dataclass
class Generation:
    """One completion: its answer text, its thinking (a reasoning model's, else ""), token counts.

    `completion_tokens` counts every output token billed, reasoning tokens included;
    `reasoning_tokens` is the part of it the server reports as reasoning."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    # Mean log-probability of the generated tokens (length-normalised confidence); None if sampling.
    mean_logprob: float | None = None
    thinking: str = ""
    reasoning_tokens: int = 0


class Prediction(BaseModel):
    """One row of evaluate/predictions.jsonl: `student` of `method` answering one question."""

    question_id: str
    task: str
    method: str  # a method (variant) name of the run, or "zero_shot"
    student: str  # a student's name, or an ensemble ("ensemble:vote", "ensemble:confidence")
    model: str  # what answered: a model folder, alias or hub id; "+"-joined for an ensemble
    response: str
    answer: str | None
    correct: bool
    mean_logprob: float | None
    completion_tokens: int
    # Right or wrong under each of lm-evaluation-harness's conventions for the task
    # (`qrdistill.evaluation.lm_eval_scores`), e.g. {"strict_match": False, "flexible_extract":
    # True}; None for a task without one.
    lm_eval: dict[str, bool] | None = None

    def row(self) -> dict:
        return self.model_dump()
