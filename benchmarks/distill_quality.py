"""Does the method do what it claims, at a scale this machine can run? One real task (StrategyQA,
BIG-bench, packaged offline), real packaged students (SmolLM2-135M-Instruct + Gemma-3-270M), a
real teacher run (SmolLM2-135M-Instruct as teacher and judge, offline), every method trained on
the same paths and evaluated on the same test questions through the whole-run pipeline:

    zero-shot (automatic), sft_single, answer_aug, qr_distill, no_routing, no_peer, no_filter

    .venv/bin/python benchmarks/distill_quality.py --small   # about 10-15 minutes on 2 cores
    .venv/bin/python benchmarks/distill_quality.py           # about 90 minutes on 2 cores

Writes the run config and runs `qrdistill.pipeline.Pipeline(cfg).run()` into
runs/benchmarks/distill_quality[_small], then reads evaluate/summary.json. Prints one JSON
object per (method, student) and writes benchmarks/results/distill_quality[_small].json.
Accuracy comes with a 95% Wilson interval and n; with tens of test questions those intervals
are wide (about +-20 points), so the table shows that every method runs on the same footing,
not which one is better.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, write_results  # noqa: E402

METHODS = ["sft_single", "answer_aug", "qr_distill", "no_routing", "no_peer", "no_filter"]

SIZES = {
    # train questions, test questions, styles, teacher tokens, epochs, eval tokens
    "small": dict(
        train_size=12,
        test_size=16,
        styles=["vanilla", "chain_of_thought", "fact_retrieval"],
        teacher_tokens=96,
        epochs=1,
        max_length=256,
        eval_tokens=64,
    ),
    "full": dict(
        train_size=40,
        test_size=100,
        styles=None,
        teacher_tokens=160,
        epochs=2,
        max_length=384,
        eval_tokens=96,
    ),
}


def run_config(size: str, run_dir: Path) -> dict:
    s = SIZES[size]
    styles = s["styles"] or [
        "vanilla",
        "chain_of_thought",
        "tree_of_thought",
        "program",
        "backward",
        "fact_retrieval",
    ]
    return {
        "run_dir": str(run_dir),
        "seed": 0,
        "data": {
            "task": "strategyqa",
            "source": {"kind": "packaged"},
            "train_size": s["train_size"],
            "dev_size": 0,
            "test_size": s["test_size"],
            "seed": 0,
        },
        "generate": {
            "backend": {
                "kind": "hf",
                "model": "smollm2-135m-instruct",
                "temperature": 0.8,
                "max_tokens": s["teacher_tokens"],
                "batch_size": 16,
            },
            "styles": styles,
            "show_progress": False,
        },
        # The quality filter is the answer check only: a 135M judge returned no parseable verdict for
        # any path in a first run here (7/7 unparseable, fail-closed -> nothing kept), so the judge
        # would only reject everything. With a real judge set judge_enabled: true.
        "filter": {"answer_check": True, "judge_enabled": False, "show_progress": False},
        "train": {
            "students": [
                {"name": "smollm2-135m", "model": "smollm2-135m-instruct", "lr": 2.0e-4},
                {"name": "gemma3-270m", "model": "gemma3-270m", "lr": 2.0e-4},
            ],
            "epochs": s["epochs"],
            "batch_size": 4,
            "max_length": s["max_length"],
            "log_every": 1,
            "checkpoint_every": 1000,
            "progress": False,
        },
        "evaluate": {"max_new_tokens": s["eval_tokens"], "batch_size": 16},
        "methods": {m: {} for m in METHODS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="the ~10-15 minute version")
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args()
    size = "small" if args.small else "full"
    name = "distill_quality_small" if args.small else "distill_quality"
    run_dir = args.run_dir or Path("runs/benchmarks") / name

    from qrdistill.config import RunConfig
    from qrdistill.pipeline import Pipeline
    from qrdistill.utils.config import validate_config

    config = run_config(size, run_dir)
    cfg = validate_config(RunConfig, config, "distill_quality")
    start = time.perf_counter()
    Pipeline(cfg).run(("data", "generate", "filter", "train", "evaluate"))
    seconds = time.perf_counter() - start

    summary = json.loads((run_dir / "evaluate" / "summary.json").read_text())
    funnel_path = run_dir / "filter" / "funnel.json"
    funnel = json.loads(funnel_path.read_text()) if funnel_path.exists() else None
    rows = []
    for row in summary:
        out = {
            "method": row["method"],
            "student": row["student"],
            "task": row["task"],
            "n": row["n"],
            "correct": row["correct"],
            "accuracy": round(row["accuracy"], 4),
            "ci95": [round(row["ci_low"], 4), round(row["ci_high"], 4)],
        }
        rows.append(emit(out))
    train_counts = {}
    for method in METHODS:
        summary_path = run_dir / "train" / method / "summary.json"
        if summary_path.exists():
            s = json.loads(summary_path.read_text())
            train_counts[method] = {
                "counts": s.get("counts"),
                "steps": s.get("steps"),
                "effective": s.get("effective"),
            }
    write_results(
        name,
        {
            "size": size,
            "config": config,
            "run_dir": str(run_dir),
            "wall_s_this_invocation": round(seconds, 1),
            "funnel": funnel,
            "train": train_counts,
            "measurements": rows,
        },
    )


if __name__ == "__main__":
    main()
