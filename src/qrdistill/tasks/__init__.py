"""Tasks: base prompts that fix the answer format, answer extraction and verification.

    from qrdistill.tasks import get_task
    task = get_task("gsm8k")
    prompt = task.build_prompt(example)          # Example or dict with question/choices
    task.extract_answer(response)                # "18", "B", "yes", "entailment", ... or None
    task.is_correct(response, example.gold)      # True / False

Extraction rules (the last final-answer statement wins) are documented in `tasks.answers`.
"""

from qrdistill.tasks.base import Task
from qrdistill.tasks.config import AnswerType, TaskSpec
from qrdistill.tasks.registry import get_task, list_tasks, register_task

__all__ = ["AnswerType", "Task", "TaskSpec", "get_task", "list_tasks", "register_task"]
