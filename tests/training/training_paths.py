"""A small set of reasoning paths for the training tests: sums in three styles, one answer
wrong in a style (a test module imports this, not the conftest; see tests/faults/fault_tools.py)."""

from __future__ import annotations

from qrdistill.records import ReasoningPath

STYLES = ["chain_of_thought", "program", "backward"]


def make_paths(n_questions: int = 4) -> list[ReasoningPath]:
    paths = []
    for q in range(n_questions):
        a, b = 3 + q, 5 + 2 * q
        for k, style in enumerate(STYLES):
            text = {
                "chain_of_thought": f"First {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}.",
                "program": f"def solve():\n    print({a} + {b})\n# prints {a + b}\nThe answer is \\boxed{{{a + b}}}.",
                "backward": f"Guess {a + b}. Check: {a + b} - {b} = {a}. The answer is \\boxed{{{a + b}}}.",
            }[style]
            paths.append(
                ReasoningPath(
                    id=ReasoningPath.make_id(f"q{q}", style, 0),
                    question_id=f"q{q}",
                    task="gsm8k",
                    style=style,
                    prompt=f"Question: what is {a} + {b}? Put the answer in \\boxed{{}}.",
                    gold=str(a + b),
                    text=text,
                    answer=str(a + b),
                    correct=(k != 2 or q % 2 == 0),
                    kept=True,
                )
            )
    return paths
