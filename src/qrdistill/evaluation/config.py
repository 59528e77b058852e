"""Configuration of the evaluation stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qrdistill.utils.config import StrictConfig


class EvaluateConfig(StrictConfig):
    """How every model answers the test questions: greedy, batched, stopping once the response ends."""

    max_new_tokens: int | None = Field(
        None,
        gt=0,
        description="generation budget per answer, in each student's own tokens; by default, "
        "in a run, the teacher's longest path counted in each student's tokenizer (students "
        "imitate paths up to that long), else 256",
    )
    batch_size: int = Field(8, gt=0)
    stop: list[str] = Field(
        default_factory=list, description="extra stop strings; the text is cut before them"
    )
    stop_after_answer: bool = Field(
        True,
        description="end an answer once its response has ended: the model opens a new "
        "exchange ('Question:', 'User:', ...) after a complete final-answer statement "
        "(\\boxed{..}, 'The best answer is X.', 'The answer is yes.'); never at a first "
        "candidate, since the last statement is the answer (docs/METHOD.md, 'Inference')",
    )
    stop_on_loop: bool = Field(
        True,
        description="end an answer stuck in a loop (one chunk repeated "
        "4+ times over 48+ characters at the end)",
    )
    instruction: str | None = Field(
        None,
        description="zero-shot style instruction appended to every task prompt "
        '(docs/METHOD.md, "Inference": each student answers alone with a zero-shot instruction)',
    )
    chat_template: bool = Field(
        True,
        description="render each prompt with the model's chat template (students are trained "
        "on it); false sends the task's prompt as plain text, as lm-evaluation-harness does "
        "unless told to apply a template, e.g. to compare base models with published figures",
    )
    ensembles: bool = Field(
        True,
        description="also score majority-vote and confidence-weighted "
        "ensembles of each method's students (reported apart)",
    )
    backend: Literal["hf", "vllm"] = "hf"
    dtype: str = "float32"
    device: str | None = Field(None, description="'cpu', 'cuda', ...; default: cuda when available")
    limit: int | None = Field(None, gt=0, description="evaluate only the first N test questions")
    trust_remote_code: bool = False
