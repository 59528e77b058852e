"""A teacher reasoning path: the record that flows from generation through filtering to training."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JudgeVerdict(BaseModel):
    """The judge's verdict on a path. `score` in [0, 1] (probability the steps are sound), or None
    when no parseable verdict could be obtained (`status` says why)."""

    score: float | None = None
    reason: str = ""
    status: Literal["ok", "unparseable", "error", "skipped"] = "ok"
    attempts: int = 0


class ReasoningPath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # "{question_id}::{style}::{sample_index}"
    question_id: str
    task: str
    style: str
    sample_index: int = 0
    prompt: str  # the task's base prompt for the question; students are trained on it
    gold: str
    text: str  # the teacher's response
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
