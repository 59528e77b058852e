"""Can the methods be told apart at a scale this machine runs? One real task (StrategyQA,
BIG-bench, packaged offline), real packaged students (SmolLM2-135M-Instruct + Gemma-3-270M), a
real teacher run (SmolLM2-135M-Instruct, offline), every method trained on the same paths and
evaluated on the same test questions through the whole-run pipeline:

    zero-shot (automatic), sft_single, answer_aug, qr_distill, no_routing, no_peer, no_filter

    .venv/bin/python benchmarks/distill_quality.py --small      # plumbing check, n = 16
    .venv/bin/python benchmarks/distill_quality.py              # the power-sized design below
    .venv/bin/python benchmarks/distill_quality.py --seeds 3    # ... repeated under 3 seeds

Each method is compared with qr_distill **paired**, on the same questions: the difference in
accuracy with a 95 % paired-bootstrap interval (10,000 resamples of the questions, seeded) and
McNemar's exact p on the questions exactly one of the two got right (evaluate/paired.json).
Accuracy keeps its 95 % Wilson interval and n.

Power calculation (the design's sizes follow from it). Two methods fine-tuned from the same
student disagree on few questions; McNemar's test looks only at those. To detect a difference of
delta = 5 points with a two-sided test at alpha = 0.05 and power 0.8, with a share p_d of
discordant questions, n = (z_0.975 sqrt(p_d) + z_0.8 sqrt(p_d - delta^2))^2 / delta^2 (Connor
1987; `qrdistill.evaluation.metrics.mcnemar_sample_size`). The pilot is the quickstart run here
(24 StrategyQA questions, the same students): two trained methods disagreed on 0-4 of 24
questions (p_d <= 0.17), a trained method and the untrained student on 2-5 (0.08-0.21). With
the planning value p_d = 0.15: n = 469 test questions (p_d = 0.10: 312; p_d = 0.20: 626). The
design takes n = 480. Students must move to be told apart: every method gets the same number of
optimizer steps (`--steps`, 30 of batch 4 by default, against 2-9 in the first small run), on
64 training questions x 3 styles of teacher paths. Evaluation is cheap per question because
answers stop at the answer line; the untrained Gemma-3-270M base rambles to the budget (the
teacher's 96 tokens), which is most of the evaluation time.

Wall time: `--estimate` (with a small run) measures the per-unit costs in this process (teacher
seconds per path, each method's seconds per optimizer step and set-up, each model's load and
seconds per test question) and extrapolates them to the power-sized design, written to the
results file beside the figures. The README gives the command and the estimate.

Writes the run config and runs `qrdistill.pipeline.Pipeline(cfg)` into
runs/benchmarks/distill_quality[_small], then writes benchmarks/results/distill_quality[_small].json
with `figures`: per (method, student) the accuracy, and per method the paired difference to
qr_distill (target: qr_distill better with p < 0.05, the paper's claim), plus the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import REAL_STUDENTS, emit, figure, wait_for_quiet_cpu, write_results  # noqa: E402

METHODS = ["sft_single", "answer_aug", "qr_distill", "no_routing", "no_peer", "no_filter"]
REFERENCE = "qr_distill"

# Power calculation (module docstring): detect DELTA at ALPHA with POWER, PLANNING_DISCORDANT
# being the share of questions two methods disagree on (from the quickstart pilot).
DELTA, ALPHA, POWER, PLANNING_DISCORDANT = 0.05, 0.05, 0.8, 0.15

SIZES = {
    "small": dict(
        train_size=12,
        test_size=16,
        styles=["vanilla", "chain_of_thought", "fact_retrieval"],
        teacher_tokens=96,
        steps=None,  # one epoch
        max_length=256,
    ),
    "power": dict(
        train_size=64,
        test_size=480,  # >= mcnemar_sample_size(DELTA, PLANNING_DISCORDANT) = 469
        styles=["vanilla", "chain_of_thought", "fact_retrieval"],
        teacher_tokens=96,
        steps=30,
        max_length=256,
    ),
}


def run_config(s: dict, run_dir: Path, methods: list[str], seeds: int) -> dict:
    train = {
        "students": REAL_STUDENTS,
        "batch_size": 4,
        "max_length": s["max_length"],
        "log_every": 1,
        "checkpoint_every": 1000,
        "progress": False,
    }
    if s["steps"]:  # the same number of optimizer steps for every method, whatever its data
        train.update(epochs=1000, max_steps=s["steps"])
    return {
        "run_dir": str(run_dir),
        "seed": 0,
        "seeds": seeds,
        "data": {
            "task": s["task"],
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
            "styles": s["styles"],
            "show_progress": False,
        },
        # The quality filter is the answer check only: a 135M judge returned no parseable verdict for
        # any path in a first run here (7/7 unparseable, fail-closed -> nothing kept), so the judge
        # would only reject everything. With a real judge set judge_enabled: true.
        "filter": {"answer_check": True, "judge_enabled": False, "show_progress": False},
        "train": train,
        # max_new_tokens is left out: it defaults to the teacher's max_tokens (a fair budget).
        "evaluate": {"batch_size": 24},
        "methods": {m: {} for m in methods},
    }


def _now() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def _since(then: tuple[float, float]) -> tuple[float, float]:
    now = _now()
    return now[0] - then[0], now[1] - then[1]


class Clock:
    """Per-unit costs measured inside this process, for the wall-time estimate: each training
    run's set-up and optimizer steps, each evaluated model's load and generation. Wall and CPU
    seconds both: on a CPU shared with other jobs the wall time says little about a quiet run,
    while the CPU seconds (the work done) do not depend on the sharing."""

    def __init__(self):
        self.train = defaultdict(lambda: {"setup": [0.0, 0.0], "steps": [0.0, 0.0], "count": 0})
        self.models = []  # {"method", "student", "n", "load": [wall, cpu], "total": [wall, cpu]}

    def install(self):
        from qrdistill.evaluation import runner
        from qrdistill.training.recipe import Recipe

        clock = self
        init, step, predict, open_engine = (
            Recipe.__init__,
            Recipe.optimizer_step,
            runner._predict,
            runner.open_engine,
        )

        def add(total: list, spent: tuple[float, float]) -> None:
            total[0] += spent[0]
            total[1] += spent[1]

        def timed_init(recipe, *args, **kwargs):
            start = _now()
            init(recipe, *args, **kwargs)
            add(clock.train[recipe.method]["setup"], _since(start))

        def timed_step(recipe, *args, **kwargs):
            start = _now()
            out = step(recipe, *args, **kwargs)
            entry = clock.train[recipe.method]
            add(entry["steps"], _since(start))
            entry["count"] += 1
            return out

        loads = []

        def timed_open(*args, **kwargs):
            start = _now()
            engine = open_engine(*args, **kwargs)
            loads.append(_since(start))
            return engine

        def timed_predict(model, cfg, examples, *args, **kwargs):
            start = _now()
            rows = predict(model, cfg, examples, *args, **kwargs)
            clock.models.append(
                {
                    "method": model.method,
                    "student": model.student,
                    "n": len(examples),
                    "load": list(loads.pop()),
                    "total": list(_since(start)),
                }
            )
            return rows

        Recipe.__init__, Recipe.optimizer_step = timed_init, timed_step
        runner._predict, runner.open_engine = timed_predict, timed_open


def timed_stages(cfg) -> dict:
    """Run the pipeline stage by stage (each skipped when up to date): wall and CPU seconds each."""
    from qrdistill.pipeline import Pipeline

    seconds = {}
    for stage in ("data", "generate", "filter", "train", "evaluate"):
        start = _now()
        Pipeline(cfg).run((stage,))
        seconds[stage] = [round(x, 1) for x in _since(start)]
    return seconds


def estimate(clock: Clock, stage_s: dict, paths: int, size: dict, seeds: int, basis: int) -> dict:
    """The time of the design `size` from this run's per-unit costs (basis 0: wall seconds as
    measured; 1: CPU seconds / 2, a quiet 2-core machine running both threads flat out): teacher
    seconds per path (model load included: an upper bound), per method set-up + steps x seconds
    per step, per model load + n x seconds per question."""
    scale = 1.0 if basis == 0 else 0.5
    per_path = scale * stage_s["generate"][basis] / max(paths, 1)
    teacher = size["train_size"] * len(size["styles"]) * per_path
    train, units = {}, {}
    for method, t in clock.train.items():
        per_step = scale * t["steps"][basis] / max(t["count"], 1)
        train[method] = scale * t["setup"][basis] + size["steps"] * per_step
        units[method] = {
            "setup_s": round(scale * t["setup"][basis], 1),
            "s_per_step": round(per_step, 2),
        }
    evaluation, per_model = {}, []
    for m in clock.models:
        load = scale * m["load"][basis]
        per_question = scale * max(m["total"][basis] - m["load"][basis], 0.0) / m["n"]
        evaluation[f"{m['method']}/{m['student']}"] = load + size["test_size"] * per_question
        per_model.append(
            {
                "model": f"{m['method']}/{m['student']}",
                "load_s": round(load, 1),
                "s_per_question": round(per_question, 3),
            }
        )
    # A sampling teacher (temperature 0.8 here) is asked again under each seed; the untrained
    # students answer once, whatever the number of seeds.
    zero_shot = sum(t for model, t in evaluation.items() if model.startswith("zero_shot/"))
    per_seed = teacher + sum(train.values()) + sum(evaluation.values()) - zero_shot
    total = seeds * per_seed + zero_shot
    missing = [
        what
        for what, measured in (("teacher", paths and stage_s["generate"][0] > 1), ("train", train))
        if not measured
    ]
    return {
        # Stages up to date in this invocation were skipped: their costs were not measured.
        "incomplete": missing or None,
        "basis": "wall seconds as measured" if basis == 0 else "CPU seconds / 2 (quiet 2 cores)",
        "design": size,
        "seeds": seeds,
        "teacher_s": round(teacher, 1),
        "train_s": {k: round(v, 1) for k, v in train.items()},
        "evaluate_s": {k: round(v, 1) for k, v in evaluation.items()},
        "total_s": round(total, 1),
        "total_min": round(total / 60, 1),
        "unit_costs": {
            "teacher_s_per_path": round(per_path, 3),
            "train": units,
            "evaluate": per_model,
        },
    }


def figures_from(run_dir: Path, seeds: int, wall_s: float) -> tuple[dict, list[dict]]:
    """Figures and printed rows: accuracy per (method, student) with its Wilson interval, and the
    paired difference to qr_distill; over several seeds, their mean and sd."""
    from qrdistill.evaluation.metrics import across_seeds

    if seeds == 1:
        summary = json.loads((run_dir / "evaluate" / "summary.json").read_text())
        paired = json.loads((run_dir / "evaluate" / "paired.json").read_text())
        accuracy = across_seeds([summary], "accuracy")
        differences = across_seeds([paired], "difference")
        by_key = {(r["method"], r["student"]): r for r in summary}
        pairs = {(r["method"], r["student"]): r for r in paired}
    else:
        per_seed = json.loads((run_dir / "seeds.json").read_text())
        accuracy, differences = per_seed["accuracy"], per_seed["paired"]
        by_key, pairs = {}, {}
    figures, rows = {}, []
    for r in accuracy:
        key = (r["method"], r["student"])
        single = by_key.get(key)
        fig = figure(
            round(100 * r["mean"], 2),
            "% accuracy" + (f", mean of {r['seeds']} seeds" if seeds > 1 else ""),
            "none: reported with its interval",
        )
        fig["n"] = r["n"]
        if single:
            fig["ci95_wilson"] = [
                round(100 * single["ci_low"], 1),
                round(100 * single["ci_high"], 1),
            ]
        if r["sd"] is not None:
            fig["sd"] = round(100 * r["sd"], 2)
        figures[f"accuracy/{r['method']}/{r['student']}"] = fig
        rows.append(
            emit({"figure": "accuracy", "method": r["method"], "student": r["student"], **fig})
        )
    for r in differences:
        key = (r["method"], r["student"])
        one = pairs.get(key)
        p_values = r["p_mcnemar"]
        fig = {
            "value": round(100 * r["mean"], 2),
            "unit": f"points, {r['method']} minus {REFERENCE}, same {r['n']} questions"
            + (f", mean of {r['seeds']} seeds" if seeds > 1 else ""),
            "target": f"< 0 with McNemar p < 0.05 ({REFERENCE} better, the paper's claim)",
            "met": r["mean"] < 0 and all(p < 0.05 for p in p_values),
            "p_mcnemar": [round(p, 4) for p in p_values],
        }
        if one:
            fig["ci95_paired_bootstrap"] = [
                round(100 * one["ci_low"], 1),
                round(100 * one["ci_high"], 1),
            ]
            fig["discordant"] = {
                "only_method": one["only_method"],
                "only_reference": one["only_reference"],
            }
        if r["sd"] is not None:
            fig["sd"] = round(100 * r["sd"], 2)
        figures[f"vs_{REFERENCE}/{r['method']}/{r['student']}"] = fig
        rows.append(
            emit({"figure": "paired", "method": r["method"], "student": r["student"], **fig})
        )
    figures["wall_time"] = figure(
        round(wall_s, 1),
        "s, this invocation (stages up to date were skipped)",
        "none: measured (the power-sized design is sized to fit about 45 min on 2 cores)",
    )
    return figures, rows


def main() -> None:
    from qrdistill.evaluation.metrics import mcnemar_detectable_difference, mcnemar_sample_size

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="the plumbing check (n = 16)")
    parser.add_argument("--train-size", type=int, help="training questions (overrides the size)")
    parser.add_argument("--test-size", type=int, help="test questions (overrides the size)")
    parser.add_argument("--steps", type=int, help="optimizer steps per method (overrides)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat under N seeds (mean, sd)")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="extrapolate this run's measured per-unit costs to the power-sized design",
    )
    parser.add_argument(
        "--task",
        default="boolq",
        help="a packaged task (the results files before 2026-12 used StrategyQA, whose archive "
        "is gone)",
    )
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--name", default=None, help="results file name (default from the size)")
    args = parser.parse_args()
    if REFERENCE not in args.methods:
        parser.error(f"--methods must include {REFERENCE}: every method is compared with it")
    size = dict(SIZES["small" if args.small else "power"])
    for key in ("train_size", "test_size", "steps"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    size["task"] = args.task
    name = args.name or ("distill_quality_small" if args.small else "distill_quality")
    run_dir = args.run_dir or Path("runs/benchmarks") / name

    from qrdistill.config import RunConfig
    from qrdistill.utils.config import validate_config

    config = run_config(size, run_dir, args.methods, args.seeds)
    cfg = validate_config(RunConfig, config, "distill_quality")
    quiet = wait_for_quiet_cpu(max_wait_s=0)
    clock = Clock()
    clock.install()
    start = time.perf_counter()
    stage_s = timed_stages(cfg)
    seconds = time.perf_counter() - start
    clock_raw = {"train": dict(clock.train), "models": clock.models}

    figures, rows = figures_from(run_dir, args.seeds, seconds)
    teacher_dir = run_dir if args.seeds == 1 else run_dir / "seed-0"
    paths = sum(1 for _ in (teacher_dir / "generate" / "paths.jsonl").open())
    funnel = json.loads((teacher_dir / "filter" / "funnel.json").read_text())
    train_dirs = {m: (teacher_dir / "train" / m / "summary.json") for m in args.methods}
    train_counts = {
        m: {k: json.loads(p.read_text()).get(k) for k in ("counts", "steps", "effective")}
        for m, p in train_dirs.items()
        if p.exists()
    }
    n = size["test_size"]
    power = {
        "delta": DELTA,
        "alpha": ALPHA,
        "power": POWER,
        "planning_discordant_share": PLANNING_DISCORDANT,
        "n_needed": mcnemar_sample_size(DELTA, PLANNING_DISCORDANT, ALPHA, POWER),
        "n_used": n,
        "detectable_difference_at_n": round(
            mcnemar_detectable_difference(n, PLANNING_DISCORDANT, ALPHA, POWER), 4
        ),
    }
    report = {
        "size": "small" if args.small else "power",
        "design": size,
        "config": config,
        "run_dir": str(run_dir),
        "quiet_cpu": quiet,
        "stage_s": stage_s,
        "wall_s_this_invocation": round(seconds, 1),
        "power_calculation": power,
        "figures": figures,
        "funnel": funnel,
        "train": train_counts,
        "measurements": rows,
    }
    if args.estimate:
        report["measured_units"] = clock_raw
        report["estimate_power_design"] = {
            basis: estimate(clock, stage_s, paths, SIZES["power"], args.seeds, index)
            for index, basis in enumerate(("wall_as_measured", "quiet_cpu"))
        }
        print(json.dumps({k: v["total_min"] for k, v in report["estimate_power_design"].items()}))
    write_results(name, report)


if __name__ == "__main__":
    main()
