"""RevThink's teacher data (Chen et al., "Reverse Thinking Makes LLMs Stronger Reasoners", NAACL
2025), made when a run's methods include `revthink` (docs/METHOD.md, "RevThink").

Per training question, beyond its forward paths (paths.jsonl), the teacher is asked three things,
each needing the reply before it:
  backward_question   a question posed from the original's answer, whose answer is one of the
                      original's givens
  backward_reasoning  its reasoning answering that backward question
  consistency         whether the backward question and reasoning agree with the original
                      question and its answer (the last "Verdict: consistent|inconsistent" line)
Every request goes through the same cached, budgeted runner as the paths (qrdistill.llm), in the
generate stage's cache, counted against its budget and in its usage.json, and estimated by the dry
run from the same plan (`question_steps`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qrdistill.llm import Request, make_request
from qrdistill.records import Example, Generation, RevThinkTriple, Usage
from qrdistill.teacher.config import GenerateConfig

ROLES = ("backward_question", "backward_reasoning", "consistency")

BACKWARD_QUESTION_PROMPT = (
    "Here is a question and its correct answer.\n\n"
    "Question:\n{question}\n\n"
    "Correct answer: {answer}\n\n"
    "Write its backward question: take the answer above as given, and ask for one of the facts "
    "the original question gives (a number, a condition or a premise), so that this fact is the "
    "answer of the new question. The backward question must be answerable from what it states, "
    "and say in what form its answer is to be given. Write only the backward question."
)
BACKWARD_REASONING_PROMPT = (
    "{backward_question}\n\n"
    "Reason step by step, then give the final answer in the form the question asks for."
)
CONSISTENCY_PROMPT = (
    "Original question:\n{question}\n\n"
    "Its correct answer: {answer}\n\n"
    "Backward question (posed from that answer, asking for something the original question "
    "gives):\n{backward_question}\n\n"
    "Reasoning that answers the backward question:\n{backward_reasoning}\n\n"
    "Is the backward question consistent with the original question and its answer, and does "
    "the reasoning arrive at what the original question gives? Explain briefly, then end with "
    "one line that is exactly 'Verdict: consistent' or 'Verdict: inconsistent'."
)

# The verdict line the consistency prompt asks for; markdown around it ("**Verdict:**") is allowed.
_VERDICT = re.compile(r"verdict\W*(inconsistent|consistent)\b", re.IGNORECASE)


def parse_consistency(reply: str) -> bool | None:
    """The teacher's verdict: its last verdict line; None when it wrote none (not kept). A reply
    that only says "consistent" in passing is no verdict: "not consistent" would read as one."""
    found = _VERDICT.findall(reply)
    return None if not found else found[-1].lower() == "consistent"


def _fill(template: str, **slots: str) -> str:
    """`replace`, not `format`: questions are full of braces (LaTeX)."""
    for name, value in slots.items():
        template = template.replace("{" + name + "}", value)
    return template


@dataclass(frozen=True)
class Step:
    """One of a question's three requests. `unknown_tokens`: 0 when its prompt is complete; else
    it holds stand-ins for replies not known yet, which may add up to this many tokens (the dry
    run counts them; generation runs only complete steps)."""

    role: str
    request: Request
    unknown_tokens: int


def question_steps(
    cfg: GenerateConfig, example: Example, base_prompt: str, known: dict[str, Generation]
) -> list[Step]:
    """The three requests of `example`, in order, their prompts filled with the replies in
    `known` (by request key) that they need."""
    backend = cfg.backend
    steps: list[Step] = []
    replies: dict[str, str] = {}
    missing = 0  # replies before this step not known yet
    slots = {"question": base_prompt, "answer": example.gold}
    # Students learn the backward reasoning from the teacher's reply, as they learn a path.
    reasoning = cfg.reply_instruction(BACKWARD_REASONING_PROMPT)
    for role, template in zip(ROLES, (BACKWARD_QUESTION_PROMPT, reasoning, CONSISTENCY_PROMPT)):
        label = f"question {example.id}, revthink {role}"
        prompt = _fill(template, **slots, **replies)
        request = make_request(backend, prompt, 0, label)
        steps.append(Step(role, request, missing * backend.max_tokens))
        reply = known.get(request.key)
        # A stand-in unique to the question, so no two unknown prompts share a cache key.
        replies[role] = reply.text.strip() if reply is not None else f"<{label}>"
        missing += reply is None
    return steps


def to_triple(example: Example, base_prompt: str, steps: list[Step], known) -> RevThinkTriple:
    replies = {step.role: known[step.request.key] for step in steps}
    return RevThinkTriple(
        question_id=example.id,
        task=example.task,
        prompt=base_prompt,
        gold=example.gold,
        backward_question=replies["backward_question"].text.strip(),
        backward_reasoning=replies["backward_reasoning"].text.strip(),
        consistency=replies["consistency"].text,
        consistent=parse_consistency(replies["consistency"].text),
        usage={
            role: Usage(
                prompt_tokens=g.prompt_tokens,
                completion_tokens=g.completion_tokens,
                reasoning_tokens=g.reasoning_tokens,
            )
            for role, g in replies.items()
        },
    )
