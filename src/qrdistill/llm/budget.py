"""What paid completions cost, and a cap on it: `BudgetConfig` (the `budget` section of the
teacher's and the judge's stage) and `Spend`, which counts real usage as requests finish.

Spend is counted from the token counts the server returns (`usage`), for every request the stage
needs that has finished, a reasoning model's reasoning tokens among the output tokens, in this run or an earlier one (read back from the request cache): a cap
covers the whole stage however often it is resumed, and raising it continues where it stopped.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from qrdistill.llm.config import BackendConfig
from qrdistill.records import Generation, Usage
from qrdistill.utils.config import StrictConfig


class BudgetConfig(StrictConfig):
    """A cap on a stage's spend: in money (needs the backend's prices), in tokens, or both.

    Once spend reaches a cap no new request starts; the requests in flight finish and are kept
    (they are paid for), so spend can pass the cap by at most `concurrency` requests.
    """

    max_usd: float | None = Field(None, gt=0)
    max_total_tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_cap_at_least(self) -> BudgetConfig:
        if self.max_usd is None and self.max_total_tokens is None:
            raise ValueError("set max_usd, max_total_tokens or both (or remove budget)")
        return self


def priced(backend: BackendConfig) -> bool:
    return backend.price_input_per_1m is not None and backend.price_output_per_1m is not None


def cost_usd(
    backend: BackendConfig, prompt_tokens: float, completion_tokens: float
) -> float | None:
    """The price of these tokens at the backend's prices; None when they are not configured."""
    if not priced(backend):
        return None
    return (
        prompt_tokens * backend.price_input_per_1m + completion_tokens * backend.price_output_per_1m
    ) / 1e6


def usage_report(backend: BackendConfig, per_style: dict[str, list[Usage]], counted: str) -> dict:
    """usage.json: tokens and USD (null without prices) per style and in total; `counted` names
    what the count per group is ("paths", "paths_judged"). `completion_tokens` counts every
    output token, `reasoning_tokens` the part of them the server reported as reasoning."""

    def summarise(usages: list[Usage]) -> dict:
        prompt_tokens = sum(u.prompt_tokens for u in usages)
        completion_tokens = sum(u.completion_tokens for u in usages)
        usd = cost_usd(backend, prompt_tokens, completion_tokens)
        return {
            counted: len(usages),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "reasoning_tokens": sum(u.reasoning_tokens for u in usages),
            "total_tokens": prompt_tokens + completion_tokens,
            "usd": None if usd is None else round(usd, 6),
        }

    return {
        "backend": backend.kind,
        "model": backend.model,
        "price_input_per_1m": backend.price_input_per_1m,
        "price_output_per_1m": backend.price_output_per_1m,
        "per_style": {style: summarise(usages) for style, usages in per_style.items()},
        "total": summarise([u for usages in per_style.values() for u in usages]),
    }


def check_budget_prices(budget: BudgetConfig | None, backend: BackendConfig, where: str) -> None:
    """A money cap cannot be counted without prices: say so when the config is read. `where`
    names the backend's section, e.g. "generate.backend"."""
    if budget is not None and budget.max_usd is not None and not priced(backend):
        raise ValueError(
            f"budget.max_usd needs the prices {where}.price_input_per_1m and "
            f"{where}.price_output_per_1m (USD per million tokens); or cap tokens with "
            "budget.max_total_tokens"
        )


class Spend:
    """Tokens and money spent on the requests of one stage, each request counted once."""

    def __init__(self, backend: BackendConfig, budget: BudgetConfig | None = None):
        self.backend = backend
        self.budget = budget
        self.prompt_tokens = 0
        self.completion_tokens = 0  # reasoning tokens included: they are billed as output
        self.reasoning_tokens = 0
        self._counted: set[str] = set()

    def add(self, key: str, generation: Generation) -> None:
        if key in self._counted:
            return
        self._counted.add(key)
        self.prompt_tokens += generation.prompt_tokens
        self.completion_tokens += generation.completion_tokens
        self.reasoning_tokens += generation.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def usd(self) -> float | None:
        return cost_usd(self.backend, self.prompt_tokens, self.completion_tokens)

    @property
    def reached(self) -> bool:
        cap = self.budget
        if cap is None:
            return False
        if cap.max_total_tokens is not None and self.total_tokens >= cap.max_total_tokens:
            return True
        return cap.max_usd is not None and (self.usd or 0.0) >= cap.max_usd

    def describe(self) -> str:
        """'$0.0123 of max_usd $0.0100, 4,321 tokens (3,000 reasoning)' (the caps that are
        set; the reasoning tokens when there are any)."""
        parts = []
        if self.usd is not None:
            cap = self.budget.max_usd if self.budget else None
            parts.append(f"${self.usd:.4f}" + (f" of max_usd ${cap:g}" if cap else ""))
        cap_tokens = self.budget.max_total_tokens if self.budget else None
        parts.append(
            f"{self.total_tokens:,} tokens"
            + (f" of max_total_tokens {cap_tokens:,}" if cap_tokens else "")
            + (f" ({self.reasoning_tokens:,} reasoning)" if self.reasoning_tokens else "")
        )
        return ", ".join(parts)
