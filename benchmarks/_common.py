"""Helpers shared by the benchmark scripts: machine and version info, fair-timing guards,
medians, realistic reasoning paths built from real questions, and the results file.

Not a benchmark itself (the leading underscore keeps it out of `ls benchmarks/*.py` habits).
"""

from __future__ import annotations

import json
import operator
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
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        info["memory_gb"] = round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        )
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


def write_results(
    name: str, report: dict, packages=DEFAULT_PACKAGES, path: Path | None = None
) -> Path:
    """benchmarks/results/NAME.json (or `path`): the command, machine and versions, then the
    headline `figures` ({name: figure(...)}, required: every results file is read the same way),
    then the rest of `report` (settings and raw rounds)."""
    figures = report.get("figures")
    # A partial report (written as a long run goes, so a cut-off run keeps what it had) may
    # come before the first figure.
    if not isinstance(figures, dict) or not (figures or report.get("partial")):
        raise ValueError(f"{name}: the report has no `figures`; add them with figure()")
    for key, entry in figures.items():
        missing = {"value", "unit", "target", "met"} - set(entry)
        if missing:
            raise ValueError(
                f"{name}: figure {key!r} lacks {sorted(missing)}; make it with figure()"
            )
    full = {
        "benchmark": name,
        "command": command_line(),
        "machine": machine_info(),
        "versions": versions(packages),
        "figures": figures,
        **report,
    }
    path = Path(path) if path else RESULTS_DIR / f"{name}.json"
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


def summary(values: list[float]) -> dict:
    """Median, range and relative spread ((max - min) / median) of repeated measurements."""
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / med if med else None,
        "n": len(values),
    }


COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


def figure(
    value,
    unit: str,
    target: str | None = None,
    note: str | None = None,
    rounds: list[float] | None = None,
) -> dict:
    """One entry of a results file's `figures`. A `target` ">= x", "<= x" or "== x" decides
    `met`; any other text (context, "none: ...") leaves it None. `rounds`, the per-round values
    behind a median, are kept as their summary (median, range, spread)."""
    met = None
    op, _, bound = (target or "").partition(" ")
    if op in COMPARE and value is not None:
        met = bool(COMPARE[op](value, float(bound)))
    out = {
        "value": None if value is None else round(value, 4),
        "unit": unit,
        "target": target,
        "met": met,
    }
    if note:
        out["note"] = note
    if rounds:
        out["rounds"] = {
            k: round(v, 4) if isinstance(v, float) else v for k, v in summary(rounds).items()
        }
    return out


def busy_processes(threshold: float = 50.0) -> list[str]:
    """Other processes using more than `threshold` % CPU (ps), excluding this one, its parent and
    the `ps` that is asking (a just-started ps reports itself at up to 100 %)."""
    try:
        with subprocess.Popen(
            ["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
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


def wait_for_quiet_cpu(
    max_wait_s: float | None = None, poll_s: float = 30, device: str = "cpu"
) -> dict:
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
    return {
        "waited_s": waited,
        "busy_at_start": busy,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


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
    """ReasoningPath records built from real questions (GSM8K and MATH levels 1-2, both packaged
    offline) with a templated response around the real human-written worked solution, in the
    answer format each task's verifier expects. About 60-400 tokens each, like short teacher
    paths. Half GSM8K, half MATH; every path marked correct and kept. (Results files written
    before 2026-12 used StrategyQA explanations instead of MATH, from the BIG-bench archive that
    has since left the package index.)"""
    import random

    from qrdistill.data import load_packaged
    from qrdistill.records import ReasoningPath
    from qrdistill.tasks import get_task

    styles = styles or list(STYLE_OPENINGS)
    rng = random.Random(seed)
    gsm = load_packaged("gsm8k")
    math = [e for e in load_packaged("math") if (e.metadata.get("level") or 5) <= 2]
    picks = [("gsm8k", e) for e in rng.sample(gsm, n)] + [("math", e) for e in rng.sample(math, n)]
    rng.shuffle(picks)
    paths = []
    for i, (task, example) in enumerate(picks[:n]):
        style = styles[i % len(styles)]
        body = example.metadata.get("solution", "").strip()
        final = f"So the answer is \\boxed{{{example.gold}}}."
        text = f"{STYLE_OPENINGS.get(style, '')}{body}\n{final}"
        paths.append(
            ReasoningPath(
                id=ReasoningPath.make_id(example.id, style, 0),
                question_id=example.id,
                task=task,
                style=style,
                prompt=get_task(task).build_prompt(example),
                gold=example.gold,
                text=text,
                answer=example.gold,
                correct=True,
                kept=True,
            ).model_dump(mode="json")
        )
    return paths


def write_paths(paths: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in paths:
            handle.write(json.dumps(row) + "\n")
    return path


# --------------------------------------------------------------------------- timing qrdistill's loop
# The two real packaged students the CPU training benchmarks time.
REAL_STUDENTS = [
    {"name": "smollm2-135m", "model": "smollm2-135m-instruct", "lr": 2e-4},
    {"name": "gemma3-270m", "model": "gemma3-270m", "lr": 2e-4},
]


def parse_epoch_args(parser, *, small_paths: int, small_reps: int, argv=None):
    """Parse the options every CPU epoch-timing benchmark shares (--small, --paths, --reps,
    --batch-size) beside the script's own, with --small choosing the small defaults."""
    parser.add_argument("--small", action="store_true", help="a quick check of the script")
    parser.add_argument(
        "--paths",
        type=int,
        default=None,
        help=f"number of paths (default 32, --small {small_paths})",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"timed epochs per side (default 3, --small {small_reps})",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    args.paths = args.paths or (small_paths if args.small else 32)
    args.reps = args.reps or (small_reps if args.small else 3)
    return args


def timing_settings(epochs: int, batch_size: int) -> dict:
    """TrainConfig fields shared by the timing benchmarks: nothing logged, shown or checkpointed
    inside a timed epoch."""
    return dict(
        epochs=epochs,
        batch_size=batch_size,
        max_length=512,
        progress=False,
        log_every=10_000,
        checkpoint_every=10_000,
        seed=0,
    )


def make_recipe(cfg, paths_file: Path, out_dir: Path):
    """A qrdistill training Recipe (students loaded, data encoded, optimizer built): the object
    `qrdistill.training.train` runs. Timed epochs go through its own `optimizer_step`."""
    from qrdistill.training.recipe import Recipe

    return Recipe(cfg, Path(paths_file), Path(out_dir)).setup()


def path_losses(cfg, paths_file: Path, out_dir: Path) -> dict[tuple[str, str], list[float]]:
    """Each student's loss on every path (mean per token, the training loss), every gate open,
    nothing trained: {(style, student): [loss per path]}."""
    import torch

    from qrdistill.training.data import collate

    cfg = cfg.model_copy(
        update={
            "routing": cfg.routing.model_copy(update={"mode": "all"}),
            "peer": cfg.peer.model_copy(update={"enabled": False}),
        }
    )
    recipe = make_recipe(cfg, paths_file, out_dir)
    model = recipe.acc.unwrap_model(recipe.model).eval()
    losses: dict[tuple[str, str], list[float]] = {}
    with torch.no_grad():
        for start in range(0, len(recipe.data), 8):
            rows = list(range(start, min(start + 8, len(recipe.data))))
            inputs = [
                collate(
                    [recipe.data.encoded[n][i] for i in rows], recipe.tokenizers[n].pad_token_id
                )
                for n in recipe.names
            ]
            result = model(
                inputs,
                chars=recipe.chars[rows],
                fixed_gates=torch.ones(len(rows), len(recipe.names)),
            )
            for k, i in enumerate(rows):
                for j, name in enumerate(recipe.names):
                    key = (recipe.data.items[i].style, name)
                    losses.setdefault(key, []).append(float(result.per_path[k, j]))
    return losses


def time_recipe_epoch(recipe, epoch: int) -> dict:
    """One epoch of qrdistill's loop exactly as `Recipe.run` does it (same batches, windows and
    `optimizer_step`), minus the progress bar, logging and checkpoint files. Returns seconds and
    the real (non-pad) tokens processed (max over students is not summed: tokens per student)."""
    import torch

    batches, windows = recipe.epoch_plan(epoch)
    tokens = {
        n: sum(len(recipe.data.encoded[n][i].input_ids) for b in batches for i in b)
        for n in recipe.names
    }
    torch.manual_seed(epoch)
    start = time.perf_counter()
    for window in windows:
        recipe.optimizer_step(epoch, [(b, batches[b]) for b in window], len(batches))
        recipe.progress.step += 1
    seconds = time.perf_counter() - start
    # What the routed step really computed this epoch: each student's share of paths.
    rates = recipe.take_route_rates()
    return {"seconds": seconds, "steps": len(windows), "tokens": tokens, "route_rate": rates}


def time_recipe_steps(recipe, epoch: int, steps: int, warm: int = 0, sync=None) -> dict:
    """`warm` untimed then `steps` timed optimizer steps of qrdistill's loop, exactly as
    `Recipe.run` takes them (same batches, windows and `optimizer_step`), from the start of
    `epoch`'s batch order. `sync` (e.g. torch.cuda.synchronize) is called around the timed part.
    Returns seconds, steps and the tokens (padding included) each student processed."""
    batches, windows = recipe.epoch_plan(epoch)
    if len(windows) < warm + steps:
        raise ValueError(f"{len(windows)} optimizer steps per epoch, {warm} + {steps} asked")
    sync = sync or (lambda: None)
    for window in windows[:warm]:
        recipe.optimizer_step(epoch, [(b, batches[b]) for b in window], len(batches))
        recipe.progress.step += 1
    timed = windows[warm : warm + steps]
    tokens = {
        n: sum(
            max(len(recipe.data.encoded[n][i].input_ids) for i in batches[b]) * len(batches[b])
            for w in timed
            for b in w
        )
        for n in recipe.names
    }
    sync()
    start = time.perf_counter()
    for window in timed:
        recipe.optimizer_step(epoch, [(b, batches[b]) for b in window], len(batches))
        recipe.progress.step += 1
    sync()
    return {"seconds": time.perf_counter() - start, "steps": steps, "tokens": tokens}


# --------------------------------------------------------------------------- the HF Trainer baseline
def hf_lora_trainer(
    model_path,
    encoded,
    tokenizer,
    out_dir: Path,
    *,
    lora: dict,
    batch_size: int,
    lr: float,
    dtype: str = "float32",
    use_cpu: bool = True,
    max_steps: int = -1,
    sampling: str | None = None,
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    callbacks=(),
):
    """Hugging Face `Trainer` + peft LoRA on the model at `model_path`, fed exactly qrdistill's
    tokenised items (`encoded`: input_ids/labels), padded dynamically by DataCollatorForSeq2Seq.
    `lora`: LoraConfig keyword arguments. dtype bfloat16/float16: the model is loaded in that type
    and the Trainer runs its mixed precision (bf16=True / fp16=True, i.e. autocast; LoRA weights
    fp32), which is how qrdistill's `precision` works too. `sampling`: the Trainer's
    train_sampling_strategy (e.g. "group_by_length"), None for its default."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    kwargs = {"dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
    if gradient_checkpointing:  # the usual peft recipe: non-reentrant, inputs requiring grad
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    rows = [
        {"input_ids": e.input_ids, "labels": e.labels, "attention_mask": [1] * len(e.input_ids)}
        for e in encoded
    ]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    extra = {"train_sampling_strategy": sampling} if sampling else {}
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=batch_size,
        num_train_epochs=1,
        max_steps=max_steps,
        learning_rate=lr,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        seed=0,
        bf16=dtype == "bfloat16",
        fp16=dtype == "float16",
        remove_unused_columns=False,
        **extra,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    return Trainer(
        model=model,
        args=args,
        train_dataset=Rows(),
        data_collator=collator,
        callbacks=list(callbacks),
    )


HF_ARGS_REPORTED = (
    "per_device_train_batch_size",
    "learning_rate",
    "lr_scheduler_type",
    "max_grad_norm",
    "weight_decay",
    "train_sampling_strategy",
    "num_train_epochs",
    "max_steps",
    "optim",
    "seed",
    "bf16",
    "fp16",
)


def hf_args_summary(trainer) -> dict:
    return {k: v for k, v in trainer.args.to_dict().items() if k in HF_ARGS_REPORTED}
