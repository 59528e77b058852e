"""LoRA training throughput, MFU and peak memory of qrdistill on real model shapes, against Hugging
Face `Trainer` + peft on the same shapes, data, LoRA config, batch and precision; and two
students trained jointly by QR-Distill against each trained alone.

    PYTHONPATH=src python benchmarks/gpu_throughput.py            # CUDA GPU; estimated 2-4 min on an H200 (not yet run)
    PYTHONPATH=src python benchmarks/gpu_throughput.py --quick    # the 1.5B shape only, fewer steps
    PYTHONPATH=src python benchmarks/gpu_throughput.py --small    # tiny shapes on CPU, a minute (CI)

Needs, beyond torch, transformers, peft and accelerate: pydantic >= 2 (with pydantic-core,
annotated-types, typing-inspection), which qrdistill's config classes use. pyyaml, numpy, tqdm
and tokenizers come with transformers. qrdistill pins transformers 5.23.0, peft 0.21.2 and
accelerate 1.15.0; the versions used are in the results file. No network, no sentence-transformers (the router's text
embeddings are precomputed random vectors written to its cache), no flash-attn (used when
installed: attn_implementation auto on both sides' loading; see "attention" in the results).

Models: random weights from a config (weights do not change speed), saved to a temp folder with
a small trained BPE tokenizer (tests/tiny_models.py); the model's vocabulary is the real one and
the token ids fed are uniform random ids in range. Shapes (hidden, layers, heads, kv heads,
intermediate, vocab; all tie input and output embeddings):
    qwen2.5-0.5b   896, 24, 14, 2,  4864, 151936   (Qwen2: q/k/v biases)
    qwen2.5-1.5b  1536, 28, 12, 2,  8960, 151936
    llama3.2-1b   2048, 16, 32, 8,  8192, 128256   (head_dim 64; rope scaling left out: no effect on speed)
Data: every sequence exactly --seq-len tokens (no padding is measured), the first 1/8 masked as
prompt (label -100), the same ids on both sides. Batch --batch-size sequences, no accumulation.
LoRA r=16, alpha=32, dropout 0.05 on all linear layers (peft "all-linear"), AdamW lr 1e-4, linear
schedule, grad clip 1.0; precision bf16 on CUDA (base weights bf16, LoRA weights fp32, autocast).

Sides, all in one process, all models resident: per shape qrdistill (one student, method
answer_aug, routing all, no peer: plain SFT through `Recipe.optimizer_step`) and HF Trainer (a
callback times its steps); plus "joint": QR-Distill proper (learned routing + hidden-state peer
teaching) on qwen2.5-1.5b + llama3.2-1b. accelerate's state is global to a process, so both
sides run under accelerate mixed_precision=bf16 (qrdistill as under `accelerate launch
--mixed_precision bf16`); qrdistill's own per-student autocast is then nested, same dtype.
Each call of a side runs --warm untimed steps, then --steps timed steps between
torch.cuda.synchronize() calls; --rounds rounds, the order of the sides reversed every other
round; medians over rounds, spread = (max - min) / median.

FLOPs per token (N = weights of every matmul: attention and MLP projections of all layers plus
the output head; N_lora = LoRA weights; L layers, S sequence length, d = heads * head_dim):
    LoRA training  = 2N (forward) + 2N (backward, activation gradients only: frozen weights need
                     no weight gradient) + 6 N_lora (LoRA forward, input and weight gradients)
                     + 6 L S d (attention scores and values: forward 4 L S d halved for the
                     causal mask, backward twice the forward)
    "model FLOPs"  = 6N, the usual full-training convention, reported beside it for comparison.
MFU = FLOPs/token * tokens/s / the device's dense bf16 peak (H100 SXM / H200: 989 TFLOP/s;
--peak-tflops to override). Peak memory per side = its own weights + optimizer state + the peak
allocated above what was resident when its steps began (the other sides' models stay resident).

Goals: MFU (LoRA FLOPs) >= 0.35 for qwen2.5-1.5b at S = 1024, and qrdistill >= 1.0x HF
Trainer's tokens/s. Results: benchmarks/results/gpu_throughput.json (--small:
gpu_throughput_small.json), rewritten after every round, so a killed run keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # tiny_models.make_tokenizer
from _common import (  # noqa: E402
    RESULTS_DIR,
    emit,
    figure,
    hf_args_summary,
    hf_lora_trainer,
    make_recipe,
    summary,
    time_recipe_steps,
    wait_for_quiet_cpu,
    write_paths,
    write_results,
)

SHAPES = {  # arch, hidden, layers, heads, kv heads, intermediate, vocab (+ head_dim where not hidden/heads)
    "qwen2.5-0.5b": dict(
        arch="qwen2",
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
    ),
    "qwen2.5-1.5b": dict(
        arch="qwen2",
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
    ),
    "llama3.2-1b": dict(
        arch="llama",
        hidden_size=2048,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        head_dim=64,
    ),
}
SMALL_SHAPES = {
    "small-qwen2": dict(
        arch="qwen2",
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=2048,
    ),
    "small-llama": dict(
        arch="llama",
        hidden_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=192,
        vocab_size=3000,
    ),
}
JOINT = ("qwen2.5-1.5b", "llama3.2-1b")
SMALL_JOINT = ("small-qwen2", "small-llama")
GOAL_SHAPE = "qwen2.5-1.5b"
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
LR = 1e-4
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, matched on torch.cuda.get_device_name();
# the first match wins, so the specific names come first.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
]


# --------------------------------------------------------------------------- FLOPs
def counts(dims: dict, r: int) -> dict:
    """N (matmul weights incl. the output head), N_lora (all-linear, rank r), L, d."""
    h, layers, inter, vocab = (
        dims["hidden_size"],
        dims["num_hidden_layers"],
        dims["intermediate_size"],
        dims["vocab_size"],
    )
    hd = dims.get("head_dim") or h // dims["num_attention_heads"]
    q, kv = dims["num_attention_heads"] * hd, dims["num_key_value_heads"] * hd
    linears = [
        (h, q),
        (h, kv),
        (h, kv),
        (q, h),
        (h, inter),
        (h, inter),
        (inter, h),
    ]  # q k v o gate up down
    n = layers * sum(i * o for i, o in linears) + h * vocab
    n_lora = layers * sum(r * (i + o) for i, o in linears)
    return {"N": n, "N_lora": n_lora, "layers": layers, "attn_dim": q}


def lora_flops_per_token(c: dict, seq: int) -> float:
    return 4 * c["N"] + 6 * c["N_lora"] + 6 * c["layers"] * seq * c["attn_dim"]


def model_flops_per_token(c: dict) -> float:
    return 6 * c["N"]


def device_peak_tflops(name: str | None) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if name and key.lower() in name.lower():
            return value
    return None


# --------------------------------------------------------------------------- models and data
def build_model(folder: Path, dims: dict, tokenizer, dtype, device: str, seq: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    dims = dict(dims)
    config_cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[dims.pop("arch")]
    config = config_cls(
        **dims,
        max_position_embeddings=max(4096, seq),
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):  # random init on the GPU: seconds, not a minute of CPU
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def synthetic_paths(n: int) -> list[dict]:
    """Placeholder ReasoningPath records (their token ids are replaced by `randomize`)."""
    from qrdistill.records import ReasoningPath

    styles = ["chain_of_thought", "program", "backward"]
    return [
        ReasoningPath(
            id=ReasoningPath.make_id(f"q{i}", styles[i % 3], 0),
            question_id=f"q{i}",
            task="gsm8k",
            style=styles[i % 3],
            prompt=f"Question {i}: what is {i} + {i}?",
            gold=str(2 * i),
            text=f"Path {i}: {i} + {i} = {2 * i}. The answer is {2 * i}.",
            answer=str(2 * i),
            correct=True,
            kept=True,
        ).model_dump(mode="json")
        for i in range(n)
    ]


def write_route_embeddings(
    paths: list[dict], cache_dir: Path, encoder: str, dim: int = 384
) -> None:
    """Random text embeddings in the router's cache, so learned routing needs no encoder here."""
    import torch

    from qrdistill.training.router import _slug

    gen = torch.Generator().manual_seed(0)
    store = {
        hashlib.sha256(p["text"].encode("utf-8")).hexdigest(): torch.randn(dim, generator=gen)
        for p in paths
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(store, cache_dir / f"{_slug(encoder)}.pt")


def randomize(recipe, vocab: dict[str, int], seq: int, seed: int = 0) -> None:
    """Every item of every student: exactly `seq` uniform random ids, the first seq // 8 masked."""
    import torch

    from qrdistill.training.data import IGNORE, Encoded

    gen = torch.Generator().manual_seed(seed)
    prompt = seq // 8
    for name in recipe.names:
        enc = recipe.data.encoded[name]
        for i in range(len(enc)):
            ids = torch.randint(0, vocab[name], (seq,), generator=gen).tolist()
            enc[i] = Encoded(ids, [IGNORE] * prompt + ids[prompt:])
    recipe.lengths = recipe.data.lengths()


# --------------------------------------------------------------------------- timing
class Side:
    """One thing timed: `call(round)` runs warm + timed steps and returns seconds for the timed
    ones; tokens per call, FLOPs per token and its own resident bytes are known up front."""

    def __init__(
        self, name: str, call, tokens: int, lora_flops: float, model_flops: float, static_bytes
    ):
        self.name, self.call, self.tokens = name, call, tokens
        self.lora_flops, self.model_flops, self.static_bytes = lora_flops, model_flops, static_bytes
        self.seconds: list[float] = []
        self.peak_extra: list[int] = []


def check_dtype(model, dtype, label: str) -> None:
    """The frozen base weights are in the benchmark's precision (an older transformers that does
    not know the `dtype` keyword would load fp32 silently and time the wrong thing)."""
    found = {p.dtype for p in model.parameters() if not p.requires_grad and p.dim() == 2}
    if found != {dtype}:
        raise RuntimeError(f"{label}: frozen weights are {found}, expected {dtype}")


def state_bytes(model, optimizer) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    opt = getattr(optimizer, "optimizer", optimizer)
    for state in getattr(opt, "state", {}).values():
        tensors += [v for v in state.values() if hasattr(v, "element_size")]
    seen, total = set(), 0
    for t in tensors:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def hf_step_timer(warm: int, steps: int, sync):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = self.seconds = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warm:
                sync()
                self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warm + steps and self.start is not None:
                sync()
                self.seconds = time.perf_counter() - self.start

    return StepTimer()


# --------------------------------------------------------------------------- main
def parse(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--small", action="store_true", help="tiny shapes on CPU, fp32 (keeps the script working)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="qwen2.5-1.5b only, no joint, 3 rounds of 5 steps"
    )
    parser.add_argument("--shapes", nargs="*", default=None, help=f"subset of {list(SHAPES)}")
    parser.add_argument("--no-joint", action="store_true")
    parser.add_argument("--seq-len", type=int, default=None, help="default 1024 (--small 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 (--small 4)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per call (default 10, --quick 5, --small 3)",
    )
    parser.add_argument(
        "--warm", type=int, default=None, help="untimed steps per call (default 3, --small 1)"
    )
    parser.add_argument(
        "--precision",
        choices=["bf16", "fp16", "fp32"],
        default=None,
        help="default bf16 on CUDA, fp32 on CPU",
    )
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on both sides")
    parser.add_argument(
        "--compile", action="store_true", help="qrdistill side only (compile: true)"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="dense bf16 peak of the device"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default benchmarks/results/...)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.small
    if not cuda and not args.small:
        sys.exit("no CUDA GPU: run with --small for the CPU check")
    shapes_table = SMALL_SHAPES if args.small else SHAPES
    shapes = args.shapes or (
        [GOAL_SHAPE if not args.small else next(iter(SMALL_SHAPES))]
        if args.quick
        else list(shapes_table)
    )
    unknown = [s for s in shapes if s not in shapes_table]
    if unknown:
        sys.exit(f"unknown shapes {unknown}; choose from {list(shapes_table)}")
    joint = None if (args.no_joint or args.quick) else (SMALL_JOINT if args.small else JOINT)
    seq = args.seq_len or (64 if args.small else 1024)
    batch = args.batch_size or (4 if args.small else 8)
    steps = args.steps or (3 if args.small else 5 if args.quick else 10)
    warm = args.warm if args.warm is not None else (1 if args.small else 3)
    precision = args.precision or ("bf16" if cuda else "fp32")
    dtype_name = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision]
    dtype = getattr(torch, dtype_name)
    # accelerate's state is one per process and both sides create an Accelerator: fix its mixed
    # precision before either does, so they agree (a mismatch is an error in accelerate).
    os.environ["ACCELERATE_MIXED_PRECISION"] = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[
        precision
    ]
    if not cuda:  # --small on a GPU machine still runs on the CPU, on both sides
        os.environ["ACCELERATE_USE_CPU"] = "true"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    device_name = torch.cuda.get_device_name() if cuda else None
    peak = args.peak_tflops or device_peak_tflops(device_name)
    name = "gpu_throughput_small" if args.small else "gpu_throughput"
    out_file = args.out or RESULTS_DIR / f"{name}.json"
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    from qrdistill.models.loading import resolve_attn_implementation

    attn = resolve_attn_implementation("auto", dtype)  # what qrdistill picks; HF gets the same
    tmp = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        return _run(
            SimpleNamespace(
                args=args,
                cuda=cuda,
                shapes_table=shapes_table,
                shapes=shapes,
                joint=joint,
                seq=seq,
                batch=batch,
                steps=steps,
                warm=warm,
                precision=precision,
                dtype_name=dtype_name,
                dtype=dtype,
                sync=sync,
                device_name=device_name,
                peak=peak,
                name=name,
                out_file=out_file,
                log=log,
                attn=attn,
                tmp=tmp,
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the saved random models (GBs on the GPU run)


def _run(run) -> dict:
    """The benchmark proper; `run` holds main()'s settings."""
    import torch

    from qrdistill.training.config import TrainConfig
    from tiny_models import make_tokenizer

    args, cuda, shapes_table, shapes, joint = (
        run.args,
        run.cuda,
        run.shapes_table,
        run.shapes,
        run.joint,
    )
    seq, batch, steps, warm, precision = run.seq, run.batch, run.steps, run.warm, run.precision
    dtype_name, dtype, sync, device_name, peak = (
        run.dtype_name,
        run.dtype,
        run.sync,
        run.device_name,
        run.peak,
    )
    name, out_file, log, attn, tmp = run.name, run.out_file, run.log, run.attn, run.tmp
    n_items = batch * (warm + steps)
    paths = synthetic_paths(n_items)
    paths_file = write_paths(paths, tmp / "paths.jsonl")
    tokenizer = make_tokenizer(400, chat=False)
    needed = list(dict.fromkeys(shapes + list(joint or ())))
    folders = {}
    for shape in needed:
        log(f"building {shape} (random weights, {dtype_name})")
        folders[shape] = build_model(
            tmp / shape, shapes_table[shape], tokenizer, dtype, "cuda" if cuda else "cpu", seq
        )
        if cuda:
            torch.cuda.empty_cache()

    student_switches = {
        "precision": precision,
        "gradient_checkpointing": args.gradient_checkpointing,
        "compile": args.compile,
        "lora": LORA,
    }
    common = dict(
        epochs=1000,
        batch_size=batch,
        max_length=max(seq, 8),
        progress=False,
        log_every=10**6,
        checkpoint_every=10**6,
        seed=0,
        clip=1.0,
        scheduler="linear",
    )
    hf_lora = {
        "r": LORA["r"],
        "lora_alpha": LORA["alpha"],
        "lora_dropout": LORA["dropout"],
        "target_modules": LORA["target_modules"],
    }
    sides: list[Side] = []
    keep: list = []  # recipes and trainers stay alive (resident) for the whole run
    configs: dict = {}
    recipe_for: dict = {}

    def qr_side(label: str, recipe, members: list[str]) -> Side:
        tokens = batch * seq * steps * len(members)  # per call
        c = {s: counts(shapes_table[s], LORA["r"]) for s in members}
        model = recipe.acc.unwrap_model(recipe.model)
        return Side(
            label,
            lambda rnd: time_recipe_steps(recipe, rnd, steps, warm, sync)["seconds"],
            tokens,
            sum(lora_flops_per_token(c[s], seq) for s in members) / len(members),
            sum(model_flops_per_token(c[s]) for s in members) / len(members),
            lambda: state_bytes(model, recipe.optimizer),
        )

    for shape in shapes:
        log(f"loading {shape}: qrdistill and HF Trainer")
        cfg = TrainConfig(
            students=[{"name": shape, "model": str(folders[shape]), "lr": LR, **student_switches}],
            objective="answer_aug",
            routing={"mode": "all"},
            peer={"enabled": False},
            **common,
        )
        recipe = make_recipe(cfg, paths_file, tmp / f"qr-{shape}")
        randomize(recipe, {shape: shapes_table[shape]["vocab_size"]}, seq)
        check_dtype(recipe.acc.unwrap_model(recipe.model), dtype, f"{shape}/qrdistill")
        recipe_for[shape] = recipe
        configs[f"{shape}/qrdistill"] = cfg.model_dump(mode="json")
        sides.append(qr_side(f"{shape}/qrdistill", recipe, [shape]))
        timer = hf_step_timer(warm, steps, sync)
        trainer = hf_lora_trainer(
            folders[shape],
            recipe.data.encoded[shape],
            recipe.tokenizers[shape],
            tmp / f"hf-{shape}",
            lora=hf_lora,
            batch_size=batch,
            lr=LR,
            dtype=dtype_name,
            use_cpu=not cuda,
            max_steps=warm + steps,
            attn_implementation=attn,
            gradient_checkpointing=args.gradient_checkpointing,
            callbacks=[timer],
        )
        configs[f"{shape}/hf_trainer"] = hf_args_summary(trainer)
        check_dtype(trainer.model, dtype, f"{shape}/hf_trainer")

        def hf_call(rnd, trainer=trainer, timer=timer):
            with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its metrics dict
                trainer.train()
            if timer.seconds is None:
                raise RuntimeError(
                    "the HF step timer saw no timed steps (Trainer callback order changed?)"
                )
            return timer.seconds

        c = counts(shapes_table[shape], LORA["r"])
        sides.append(
            Side(
                f"{shape}/hf_trainer",
                hf_call,
                batch * seq * steps,
                lora_flops_per_token(c, seq),
                model_flops_per_token(c),
                lambda trainer=trainer: state_bytes(trainer.model, trainer.optimizer),
            )
        )
        keep.append((recipe, trainer))

    joint_note = None
    if joint:
        log(f"loading joint: {' + '.join(joint)}")
        students = [
            {"name": s, "model": str(folders[s]), "lr": LR, **student_switches} for s in joint
        ]
        route_cache = tmp / "route-embeddings"
        cfg = TrainConfig(
            students=students,
            objective="qr_distill",
            routing={"mode": "learned", "encoder": "minilm", "cache_dir": str(route_cache)},
            peer={"enabled": True, "kind": "hidden"},
            **common,
        )
        try:
            write_route_embeddings(paths, route_cache, "minilm")
            recipe = make_recipe(cfg, paths_file, tmp / "qr-joint")
        except ImportError as err:  # the router's cache format changed and it wants its encoder
            joint_note = (
                f"learned routing unavailable here ({err}); joint run uses routing all + peer"
            )
            log(joint_note)
            cfg = TrainConfig(
                students=students,
                objective="qr_distill",
                routing={"mode": "all"},
                peer={"enabled": True, "kind": "hidden"},
                **common,
            )
            recipe = make_recipe(cfg, paths_file, tmp / "qr-joint")
        randomize(recipe, {s: shapes_table[s]["vocab_size"] for s in joint}, seq, seed=1)
        configs["joint/qrdistill"] = cfg.model_dump(mode="json")
        sides.append(qr_side("joint/qrdistill", recipe, list(joint)))
        keep.append((recipe,))
        missing = [s for s in joint if s not in recipe_for]
        if missing:
            joint_note = (
                joint_note or ""
            ) + f" separate runs of {missing} not loaded (--shapes): no ratio"

    # --small is a CI check of the script, not a figure worth waiting minutes for.
    quiet = wait_for_quiet_cpu(
        max_wait_s=float(os.environ.get("BENCH_MAX_WAIT_S", "60")) if args.small else None,
        device="cuda" if cuda else "cpu",
    )
    setup = {
        "device": device_name or "cpu",
        "peak_bf16_tflops": peak,
        "precision": precision,
        "attention": attn or "sdpa (transformers default)",
        "seq_len": seq,
        "batch_size": batch,
        "timed_steps_per_call": steps,
        "warm_steps_per_call": warm,
        "rounds": args.rounds,
        "gradient_checkpointing": args.gradient_checkpointing,
        "compile_qrdistill": args.compile,
        "lora": LORA,
        "lr": LR,
        "shapes": {s: shapes_table[s] for s in needed},
        "flop_counts": {s: counts(shapes_table[s], LORA["r"]) for s in needed},
        "cuda": torch.version.cuda,
        "quiet_cpu": quiet,
        "joint": list(joint) if joint else None,
        "joint_note": joint_note,
    }
    if args.small:
        setup["note"] = (
            "tiny shapes on a CPU: this checks that the script works; with steps of a few "
            "milliseconds the fixed per-step costs dominate, so these are not throughput figures"
        )
    rounds: list[dict] = []

    def report(partial: bool) -> dict:
        figures, results = {}, {}
        for side in sides:
            if not side.seconds:
                continue
            s = summary(side.seconds)
            tps = side.tokens / s["median"]
            mem = (side.static_bytes() + max(side.peak_extra)) / 2**30 if cuda else None
            mfu = side.lora_flops * tps / (peak * 1e12) if peak else None
            mfu6 = side.model_flops * tps / (peak * 1e12) if peak else None
            results[side.name] = {
                "seconds_per_call": s,
                "tokens_per_call": side.tokens,
                "tokens_per_s": tps,
                "mfu_lora_flops": mfu,
                "mfu_6n": mfu6,
                "lora_flops_per_token": side.lora_flops,
                "model_flops_per_token": side.model_flops,
                "peak_memory_gib": mem,
                "peak_extra_gib": [b / 2**30 for b in side.peak_extra] if cuda else None,
            }
            goal = (
                ">= 0.35"
                if side.name == f"{GOAL_SHAPE}/qrdistill" and seq == 1024 and not args.small
                else None
            )
            figures[f"mfu/{side.name}"] = figure(
                mfu, "fraction of dense bf16 peak (LoRA FLOPs)", goal
            )
            figures[f"mfu_6n/{side.name}"] = figure(mfu6, "fraction of dense bf16 peak (6N FLOPs)")
            figures[f"tokens_per_s/{side.name}"] = figure(tps, "tokens/s")
            figures[f"peak_memory_gib/{side.name}"] = figure(mem, "GiB")
        for shape in shapes:
            qr, hf = results.get(f"{shape}/qrdistill"), results.get(f"{shape}/hf_trainer")
            if qr and hf:
                figures[f"speedup_vs_hf_trainer/{shape}"] = figure(
                    qr["tokens_per_s"] / hf["tokens_per_s"],
                    "x (tokens/s ratio of medians)",
                    ">= 1.0",
                )
        if (
            joint
            and "joint/qrdistill" in results
            and all(f"{s}/qrdistill" in results for s in joint)
        ):
            separate = sum(results[f"{s}/qrdistill"]["seconds_per_call"]["median"] for s in joint)
            figures["joint_over_separate_time"] = figure(
                results["joint/qrdistill"]["seconds_per_call"]["median"] / separate,
                "joint step time / sum of the separate step times (same batch, same tokens per student)",
                note="QR-Distill proper (learned routing + peer) vs each student alone (SFT); paper: 0.69",
            )
        full = {
            "partial": partial,
            "figures": figures,
            "setup": setup,
            "results": results,
            "rounds": rounds,
            "config": configs,
        }
        write_results(name, full, path=out_file)
        return full

    report(partial=True)  # the set-up is on disk before the first timed step
    log(
        f"timing {len(sides)} sides x {args.rounds} rounds ({warm} warm + {steps} timed steps per call)"
    )
    for rnd in range(args.rounds):
        order = sides if rnd % 2 == 0 else sides[::-1]
        row = {"round": rnd, "order": [s.name for s in order]}
        for side in order:
            if cuda:
                sync()
                resident = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            seconds = side.call(rnd)
            side.seconds.append(seconds)
            if cuda:
                side.peak_extra.append(torch.cuda.max_memory_allocated() - resident)
            tps = side.tokens / seconds
            row[side.name] = {"seconds": round(seconds, 4), "tokens_per_s": round(tps, 1)}
            emit(
                {
                    "round": rnd,
                    "side": side.name,
                    "seconds": round(seconds, 4),
                    "tokens_per_s": round(tps, 1),
                    "mfu": round(side.lora_flops * tps / (peak * 1e12), 4) if peak else None,
                }
            )
        rounds.append(row)
        report(partial=rnd < args.rounds - 1)
    final = report(partial=False)
    for key, fig in final["figures"].items():
        if not key.startswith(("tokens_per_s/", "mfu_6n/")):
            emit({"figure": key, **fig})
    del keep
    gc.collect()
    return final


if __name__ == "__main__":
    main()
