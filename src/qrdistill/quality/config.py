"""Configuration of stage 2: answer check, LLM judge, threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from qrdistill.llm.budget import BudgetConfig, check_budget_prices
from qrdistill.llm.config import BackendConfig
from qrdistill.quality.judge import (
    DEFAULT_JUDGE_TEMPLATE,
    DEFAULT_PROBABILITY_TEMPLATE,
    TEMPLATE_SLOTS,
    VERDICT_RESPONSE_FORMAT,
)
from qrdistill.utils.config import StrictConfig


class JudgeBackendConfig(BackendConfig):
    """A backend with judge-friendly defaults: deterministic and short."""

    temperature: float = Field(0.0, ge=0.0)
    max_tokens: int = Field(128, ge=1)

    @field_validator("response_format", mode="before")
    @classmethod
    def _named_response_format(cls, value):
        """Two names for the usual settings: "verdict" (the verdict's JSON schema, scale
        included) and "json_object" (any JSON object; the prompt states the keys)."""
        named = {"verdict": VERDICT_RESPONSE_FORMAT, "json_object": {"type": "json_object"}}
        if isinstance(value, str):
            if value not in named:
                raise ValueError(f"response_format: a mapping, or one of {', '.join(named)}")
            return named[value]
        return value


class FilterConfig(StrictConfig):
    # (a) drop paths whose extracted answer does not match the gold answer (task verifier)
    answer_check: bool = True
    # (b) drop paths the judge scores below `threshold` (scores are normalised to [0, 1])
    judge_enabled: bool = True
    judge: JudgeBackendConfig = Field(default_factory=JudgeBackendConfig)
    # "generate": the judge writes a verdict, {"score": N, "reason": ...} with N from 0 to 10
    # (any backend; `judge.response_format: verdict` has an openai server enforce it). "probability": the
    # score is P("Yes") as the judge's next token, read from its logits (hf backend only); small
    # local judges that never follow a format still give a usable score this way.
    judge_scoring: Literal["generate", "probability"] = "generate"
    # None: the default template of the scoring mode. Must contain {question} and {path}.
    judge_template: str | None = None
    # Attempts to get a readable verdict; after the last, `on_unparseable` decides. Rejecting
    # (fail closed) is the default: an unread verdict is no evidence that the path is sound.
    judge_attempts: int = Field(3, ge=1)
    on_unparseable: Literal["reject", "keep"] = "reject"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Optional cap on what the judge spends (a paid API judge); as generate.budget.
    budget: BudgetConfig | None = None
    show_progress: bool = True

    @model_validator(mode="after")
    def _budget_has_prices(self) -> FilterConfig:
        check_budget_prices(self.budget, self.judge, "filter.judge")
        return self

    @field_validator("judge_template")
    @classmethod
    def _template_has_slots(cls, template: str | None) -> str | None:
        if template is None:
            return None
        missing = [slot for slot in TEMPLATE_SLOTS if slot not in template]
        if missing:
            raise ValueError(f"judge_template must contain {' and '.join(missing)}")
        return template

    @property
    def template(self) -> str:
        if self.judge_template is not None:
            return self.judge_template
        return (
            DEFAULT_PROBABILITY_TEMPLATE
            if self.judge_scoring == "probability"
            else DEFAULT_JUDGE_TEMPLATE
        )
