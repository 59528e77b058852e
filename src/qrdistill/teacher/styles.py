"""Reasoning styles as data: an instruction template around the task's base prompt.

The task's base prompt fixes what is asked and the answer format (e.g. `\\boxed{}` or "The best
answer is X"); a style only changes how the teacher is asked to reason on the way there. Students
are trained on the base prompt alone, so the style shows up only in the reasoning they imitate.
Users add or replace styles in the config (`style_templates`).
"""

from __future__ import annotations

PROMPT_SLOT = "{prompt}"

BUILTIN_STYLES: dict[str, str] = {
    "vanilla": (
        "{prompt}\n\n"
        "Explain your reasoning in a few plain sentences, then give the final answer in the "
        "format asked for above."
    ),
    "chain_of_thought": (
        "{prompt}\n\n"
        "Work through this one small step at a time. Number each step, make every step follow "
        "from the ones before it, and show each calculation or inference explicitly. End with "
        "the final answer in the format asked for above."
    ),
    "tree_of_thought": (
        "{prompt}\n\n"
        "Before solving, sketch two or three different ways one could approach this problem. "
        "Judge briefly which of them is most promising and why, follow that one through to the "
        "end, and end with the final answer in the format asked for above."
    ),
    "program": (
        "{prompt}\n\n"
        "Solve this by writing a short Python program (or precise pseudocode) that computes the "
        "answer, with comments for the key steps. Then say what the program prints and give it "
        "as the final answer in the format asked for above."
    ),
    "backward": (
        "{prompt}\n\n"
        "First reason forward to a candidate answer. Then check it by working backward: start "
        "from the candidate and confirm that it agrees with every condition in the question, "
        "fixing it if it does not. End with the verified final answer in the format asked for "
        "above."
    ),
    "fact_retrieval": (
        "{prompt}\n\n"
        "Start by listing the facts, definitions or formulas you need to answer this. Then "
        "reason from those facts to the solution, and end with the final answer in the format "
        "asked for above."
    ),
}


# Appended to the style instruction of a reasoning teacher whose answer students learn
# (`generate.reasoning: styled_answer`): such a teacher reasons at length in its private thinking
# and may answer tersely, but only the answer is kept.
REPLY_HOLDS_REASONING = (
    "\n\nWrite this reasoning out in your reply itself, as asked, not only in your private "
    "thinking: the reply is all that is kept."
)


def apply_style(template: str, base_prompt: str) -> str:
    """The text the teacher sees. `replace`, not `format`: prompts are full of braces (LaTeX)."""
    return template.replace(PROMPT_SLOT, base_prompt)
