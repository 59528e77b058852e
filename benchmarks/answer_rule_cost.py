"""What the one answer rule costs in evaluation time (issue 19, item 2; README results item 5a).

The evaluator used to stop an answer at its first complete final-answer statement; it now stops
only once the response has ended (EOS, or a new exchange after the answer), because extraction
scores the last statement. This runs the evaluator's generation (`qrdistill.models.generate`,
greedy, batched, length-sorted, loop guard on, 256-token budget) on the same questions under both
stop rules and reports wall time, completion tokens, accuracy, and how many scored answers differ
(an answer the first-statement rule scores that the model went on to change).

    .venv/bin/python benchmarks/answer_rule_cost.py                 # 16 ARC-Challenge + 16 GSM8K
    .venv/bin/python benchmarks/answer_rule_cost.py --questions 8 --reps 1

Model: the real packaged SmolLM2-135M-Instruct, float32, CPU. The first-statement rule is
rebuilt here from `tasks.answers.first_statement_end` exactly as stopping.py had it (the
statement complete and its line ended). Sides alternate; medians over the repetitions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, figure, median, wait_for_quiet_cpu, write_results  # noqa: E402

MODEL = "smollm2-135m-instruct"
TASKS = ("arc_challenge", "gsm8k")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=16, help="per task")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    from qrdistill.data import load_packaged
    from qrdistill.evaluation.runner import base_prompt
    from qrdistill.evaluation.stopping import looping, stop_rule
    from qrdistill.models import generate, load_causal_lm, render_prompt
    from qrdistill.tasks import get_task
    from qrdistill.tasks.answers import first_statement_end

    model, tok = load_causal_lm(MODEL, dtype="float32")
    model.eval()

    def first_statement_rule(task):
        words = list(task.vocabulary)

        def complete(text: str) -> bool:
            end = first_statement_end(text, task.answer_type, words)
            return (end is not None and "\n" in text[end:]) or looping(text)

        return complete

    rules = {
        "first_statement": first_statement_rule,
        "end_of_response": lambda task: stop_rule(task, True, True),
    }
    questions = {name: load_packaged(name)[: args.questions] for name in TASKS}
    prompts = {
        name: [render_prompt(tok, base_prompt(e, None)) for e in examples]
        for name, examples in questions.items()
    }

    def run(side: str) -> dict:
        seconds, tokens, correct, answers = 0.0, 0, 0, []
        for name, examples in questions.items():
            task = get_task(name)
            start = time.perf_counter()
            gens = generate(
                model,
                tok,
                prompts[name],
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                stop_when=rules[side](task),
            )
            seconds += time.perf_counter() - start
            tokens += sum(g.completion_tokens for g in gens)
            for g, e in zip(gens, examples):
                answers.append(task.extract_answer(g.text, e.choices))
                correct += task.is_correct(g.text, e.gold, e.choices)
        n = len(answers)
        return {"seconds": seconds, "tokens": tokens, "accuracy": correct / n, "answers": answers}

    quiet = wait_for_quiet_cpu()
    rows = []
    for rep in range(args.reps):
        order = list(rules) if rep % 2 == 0 else list(reversed(rules))
        got = {side: run(side) for side in order}
        old, new = got["first_statement"], got["end_of_response"]
        rows.append(
            emit(
                {
                    "rep": rep,
                    "order": order,
                    "seconds/first_statement": round(old["seconds"], 2),
                    "seconds/end_of_response": round(new["seconds"], 2),
                    "tokens/first_statement": old["tokens"],
                    "tokens/end_of_response": new["tokens"],
                    "accuracy/first_statement": old["accuracy"],
                    "accuracy/end_of_response": new["accuracy"],
                    "answers_differ": sum(a != b for a, b in zip(old["answers"], new["answers"])),
                    "ratio_time": round(new["seconds"] / old["seconds"], 4),
                }
            )
        )
    n = sum(len(e) for e in questions.values())
    ratios = [r["ratio_time"] for r in rows]
    write_results(
        "answer_rule_cost",
        {
            "figures": {
                "time_ratio_end_of_response_vs_first_statement": figure(
                    median(ratios),
                    "evaluation generation wall time, end-of-response rule / first-statement rule",
                    "none: the price of scoring the answer the model ended on",
                    rounds=ratios,
                ),
                "tokens_per_question_end_of_response": figure(
                    rows[-1]["tokens/end_of_response"] / n, "completion tokens per question"
                ),
                "tokens_per_question_first_statement": figure(
                    rows[-1]["tokens/first_statement"] / n, "completion tokens per question"
                ),
                "answers_differ": figure(
                    rows[-1]["answers_differ"],
                    f"scored answers that differ between the rules, of {n}",
                ),
            },
            "model": "real packaged SmolLM2-135M-Instruct, float32, cpu",
            "config": {
                "tasks": list(TASKS),
                "questions_per_task": args.questions,
                "batch_size": args.batch_size,
                "max_new_tokens": args.max_new_tokens,
                "reps": args.reps,
            },
            "quiet_cpu": quiet,
            "rounds": rows,
        },
    )


if __name__ == "__main__":
    main()
