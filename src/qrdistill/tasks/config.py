"""User-defined tasks: a `TaskSpec` in the run config (or code) becomes a registered `Task`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qrdistill.utils.config import StrictConfig

AnswerType = Literal["number", "math", "multiple_choice", "yes_no", "label_set", "exact_match"]


class TaskSpec(StrictConfig):
    """A task defined by its answer type.

    - number: a numeric answer, checked by math-verify (`\\boxed{}` in the prompt);
    - math: a LaTeX expression, checked by symbolic equivalence (`\\boxed{}`);
    - multiple_choice: gold is an option letter; examples carry `choices`;
    - yes_no: gold is "yes" or "no" (any case);
    - label_set: gold is one of `labels` (compared case-insensitively);
    - exact_match: free text, compared after lower-casing and removing punctuation at the ends.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", description="registry name, e.g. 'my_qa'")
    answer_type: AnswerType
    labels: list[str] | None = Field(
        default=None, description="the allowed labels (label_set only)"
    )
    instruction: str | None = Field(
        default=None,
        description="task-specific text placed between the question and the answer format",
    )
    description: str = ""

    @model_validator(mode="after")
    def _labels_match_answer_type(self) -> TaskSpec:
        if self.answer_type == "label_set":
            if not self.labels or len({label.strip().lower() for label in self.labels}) < 2:
                raise ValueError("answer_type 'label_set' needs at least two distinct labels")
        elif self.labels:
            raise ValueError(
                f"labels are only used with answer_type 'label_set', not '{self.answer_type}'"
            )
        return self
