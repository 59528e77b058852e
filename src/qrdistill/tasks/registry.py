"""The task registry: the built-in benchmark tasks plus tasks users register from config."""

from __future__ import annotations

from typing import Any

from qrdistill.errors import ConfigError
from qrdistill.tasks.base import Task
from qrdistill.tasks.config import TaskSpec
from qrdistill.utils.config import validate_config

_NLI_VOCABULARY = {
    "entailment": "entailment",
    "neutral": "neutral",
    "contradiction": "contradiction",
    # ANLI's own label names in some releases, and the usual true/neither/false phrasing.
    "true": "entailment",
    "neither": "neutral",
    "false": "contradiction",
}

BUILTIN_TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task.from_spec(
            TaskSpec(
                name="gsm8k",
                answer_type="number",
                description="GSM8K grade-school math word problems",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="math",
                answer_type="math",
                description="MATH competition problems (7 subjects, levels 1-5)",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="arc_challenge",
                answer_type="multiple_choice",
                description="ARC-Challenge grade-school science questions",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="commonsense_qa",
                answer_type="multiple_choice",
                description="CommonsenseQA five-option questions",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="date_understanding",
                answer_type="multiple_choice",
                description="BIG-bench date understanding (MM/DD/YYYY options); hub or local",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="strategyqa",
                answer_type="yes_no",
                description="StrategyQA implicit multi-step yes/no questions; hub or local",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="piqa",
                answer_type="multiple_choice",
                description="PIQA physical commonsense: which of two solutions reaches the goal",
            )
        ),
        Task.from_spec(
            TaskSpec(
                name="boolq",
                answer_type="yes_no",
                description="BoolQ yes/no questions about a Wikipedia passage",
            )
        ),
        Task(
            name="anli",
            answer_type="label_set",
            description="Adversarial NLI: premise/hypothesis pairs",
            instruction="Does the premise entail the hypothesis, contradict it, or neither?",
            labels=("entailment", "neutral", "contradiction"),
            vocabulary=_NLI_VOCABULARY,
        ),
    )
}

_user_tasks: dict[str, Task] = {}


def register_task(spec: TaskSpec | dict[str, Any], replace: bool = False) -> Task:
    """Register a user-defined task; a built-in name, or a taken name without `replace`, is an error."""
    if isinstance(spec, dict):
        spec = validate_config(TaskSpec, spec, source="task spec")
    if spec.name in BUILTIN_TASKS:
        raise ConfigError(f"task '{spec.name}' is built in; choose another name for your task")
    if spec.name in _user_tasks and not replace and Task.from_spec(spec) != _user_tasks[spec.name]:
        raise ConfigError(f"task '{spec.name}' is already registered with a different definition")
    task = _user_tasks[spec.name] = Task.from_spec(spec)
    return task


def get_task(name: str) -> Task:
    task = BUILTIN_TASKS.get(name) or _user_tasks.get(name)
    if task is None:
        raise ConfigError(
            f"unknown task '{name}'; available: {', '.join(list_tasks())} "
            "(or register your own with a TaskSpec)"
        )
    return task


def list_tasks() -> list[str]:
    return [*BUILTIN_TASKS, *sorted(_user_tasks)]
