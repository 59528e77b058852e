"""Configuration of path generation (stage 1); its backend is a `qrdistill.llm.BackendConfig`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from qrdistill.llm.budget import BudgetConfig, check_budget_prices
from qrdistill.llm.config import BackendConfig
from qrdistill.teacher.styles import BUILTIN_STYLES, PROMPT_SLOT, REPLY_HOLDS_REASONING
from qrdistill.utils.config import StrictConfig


class GenerateConfig(StrictConfig):
    """Stage 1: one path per style (times `samples_per_style`) per question."""

    backend: BackendConfig = Field(default_factory=BackendConfig)
    # Style ids to generate, in order. Built in: vanilla, chain_of_thought, tree_of_thought,
    # program, backward, fact_retrieval.
    styles: list[str] = Field(default_factory=lambda: list(BUILTIN_STYLES), min_length=1)
    # Extra or replacement styles: id -> instruction template holding the `{prompt}` slot where
    # the task's base prompt goes.
    style_templates: dict[str, str] = Field(default_factory=dict)
    # Paths per style per question, each its own draw (`sample_index` 0..N-1, in the cache key
    # and the path id); asked for in one request with `n` where the server takes it.
    samples_per_style: int = Field(1, ge=1)
    # What students learn from a reasoning teacher (one whose `backend.thinking` is not "none"):
    # "styled_answer": its answer, which the style instruction asks to hold the reasoning (the
    #   teacher is told that its reply, not its private thinking, is what is kept);
    # "answer": its answer as it comes, with the style prompt unchanged;
    # "thinking_and_answer": its thinking, then its answer, in each student's own thinking
    #   format where its chat template has one, else a <think> block.
    # The teacher's thinking is kept with every path whichever is chosen, so moving between
    # "answer" and "thinking_and_answer" makes no new call. A teacher that does not think
    # learns its reply either way, with the style prompt unchanged.
    reasoning: Literal["styled_answer", "answer", "thinking_and_answer"] = "styled_answer"
    # Optional cap on what generation spends (real usage, cached requests included); see
    # qrdistill.llm.budget. None: no cap.
    budget: BudgetConfig | None = None
    show_progress: bool = True

    @field_validator("style_templates")
    @classmethod
    def _templates_have_slot(cls, templates: dict[str, str]) -> dict[str, str]:
        for style, template in templates.items():
            if PROMPT_SLOT not in template:
                raise ValueError(
                    f"style '{style}': the template must contain {PROMPT_SLOT}, "
                    "where the task's prompt goes"
                )
        return templates

    @model_validator(mode="after")
    def _styles_are_known(self) -> GenerateConfig:
        known = set(BUILTIN_STYLES) | set(self.style_templates)
        unknown = [s for s in self.styles if s not in known]
        if unknown:
            raise ValueError(
                f"unknown style(s) {unknown}; built in: {', '.join(BUILTIN_STYLES)}; "
                "add your own under style_templates"
            )
        if len(set(self.styles)) != len(self.styles):
            raise ValueError(f"styles lists a style twice: {self.styles}")
        check_budget_prices(self.budget, self.backend, "generate.backend")
        return self

    def style_template(self, style: str) -> str:
        return self.reply_instruction(self.style_templates.get(style) or BUILTIN_STYLES[style])

    def reply_instruction(self, template: str) -> str:
        """`template` as a reasoning teacher whose reply students learn is asked it: told that
        its reply, not its private thinking, is what is kept (`reasoning: styled_answer`)."""
        if self.reasoning == "styled_answer" and self.backend.thinking != "none":
            return template + REPLY_HOLDS_REASONING
        return template

    @property
    def learn(self) -> Literal["answer", "thinking_and_answer"]:
        """What students learn from each path (`ReasoningPath.learn`)."""
        return "thinking_and_answer" if self.reasoning == "thinking_and_answer" else "answer"
