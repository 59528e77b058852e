"""The one record schema every data source is converted to."""

from __future__ import annotations

from typing import Any

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
