"""Evaluation and generation speed.

1. Wall time to evaluate N test questions with qrdistill's evaluator (`qrdistill.evaluation.evaluate`:
   greedy, batched, length-sorted, stopping each answer once its response has ended (EOS, or a
   new exchange opened after its final-answer statement),
   256-token budget) against decoding a fixed 1024 new tokens per question as the authors' code
   did; same model, same questions, same prompts, same batch. Both sides include loading the
   model. Key `ratio_time_vs_fixed_length` (qrdistill / fixed).
2. Generation tokens/s of qrdistill's `models.generate` (as the evaluator calls it) against plain
   `model.generate` (greedy, same left-padded batch, same 256-token budget, no stop rule); tokens
   are real generated tokens (up to EOS/pad); --small uses a 64-token budget. Key `ratio_tokens_per_s_vs_generate`.

    .venv/bin/python benchmarks/eval_generation.py           # fixed side decodes 1024 tokens for real
    .venv/bin/python benchmarks/eval_generation.py --small   # fixed side decodes 64, time x16 (extrapolated); 64-token budget in part 2

Model: the real packaged SmolLM2-135M-Instruct, float32, CPU. Questions: the first N (default 8)
StrategyQA questions (BIG-bench, packaged). Sides alternate; medians over the repetitions.
With --small the fixed-length side is measured at 64 new tokens and scaled linearly to 1024;
per-token cost grows with sequence length (attention over a longer KV cache), so the
extrapolation underestimates the fixed-length time and the reported ratio is conservative.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, figure, median, wait_for_quiet_cpu, write_results  # noqa: E402

MODEL = "smollm2-135m-instruct"
TASK = "boolq"  # packaged yes/no questions (StrategyQA before its archive left the index)
FIXED = 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--fixed-measured",
        type=int,
        default=None,
        help="new tokens actually decoded on the fixed side (default 1024, --small 256)",
    )
    parser.add_argument(
        "--gen-tokens",
        type=int,
        default=None,
        help="token budget of the tokens/s comparison (default 256, --small 64)",
    )
    args = parser.parse_args()
    gen_tokens = args.gen_tokens or (64 if args.small else 256)
    fixed_measured = args.fixed_measured or (64 if args.small else FIXED)
    scale = FIXED / fixed_measured

    import torch

    from qrdistill.data import load_packaged
    from qrdistill.evaluation import EvalModel, evaluate
    from qrdistill.evaluation.config import EvaluateConfig
    from qrdistill.evaluation.runner import base_prompt
    from qrdistill.evaluation.stopping import stop_rule
    from qrdistill.models import generate, load_causal_lm, render_prompt
    from qrdistill.tasks import get_task
    from qrdistill.utils.io import write_jsonl

    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    examples = load_packaged(TASK)[: args.questions]
    test_path = tmp / "test.jsonl"
    write_jsonl(test_path, [e.model_dump(mode="json") for e in examples])
    eval_cfg = EvaluateConfig(batch_size=args.batch_size, ensembles=False, device="cpu")
    task = get_task(TASK)

    def qrdistill_eval(rep: int) -> dict:
        start = time.perf_counter()
        evaluate(
            eval_cfg,
            test_path,
            [EvalModel(method=f"bench{rep}", student="smollm2", model=MODEL)],
            tmp / f"eval{rep}",
        )
        seconds = time.perf_counter() - start
        from qrdistill.utils.io import read_jsonl

        rows = read_jsonl(tmp / f"eval{rep}" / "predictions.jsonl")
        return {
            "seconds": seconds,
            "completion_tokens": sum(r["completion_tokens"] for r in rows),
            "accuracy": sum(r["correct"] for r in rows) / len(rows),
        }

    def fixed_length() -> dict:
        start = time.perf_counter()
        model, tok = load_causal_lm(MODEL, dtype="float32")
        model.eval()
        prompts = [render_prompt(tok, base_prompt(e, None)) for e in examples]
        tok.padding_side = "left"
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(prompts), args.batch_size):
                batch = tok(
                    prompts[i : i + args.batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                out = model.generate(
                    **batch,
                    max_new_tokens=fixed_measured,
                    min_new_tokens=fixed_measured,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
                texts = tok.batch_decode(
                    out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
                )
                correct += sum(
                    task.is_correct(t, e.gold, e.choices)
                    for t, e in zip(texts, examples[i : i + args.batch_size])
                )
        measured = time.perf_counter() - start
        return {"seconds_measured": measured, "accuracy": correct / len(examples)}

    # generation throughput: both sides on one loaded model, same rendered prompts
    model, tok = load_causal_lm(MODEL, dtype="float32")
    model.eval()
    rendered = [render_prompt(tok, base_prompt(e, None)) for e in examples]
    rule = stop_rule(task, True, True)
    end_ids = {tok.eos_token_id, tok.pad_token_id}

    def ours() -> dict:
        start = time.perf_counter()
        gens = generate(
            model,
            tok,
            rendered,
            max_new_tokens=gen_tokens,
            batch_size=args.batch_size,
            stop_when=rule,
        )
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "tokens": sum(g.completion_tokens for g in gens)}

    def plain() -> dict:
        order = sorted(range(len(rendered)), key=lambda i: len(rendered[i]), reverse=True)
        tokens = 0
        start = time.perf_counter()
        tok.padding_side = "left"
        with torch.inference_mode():
            for i in range(0, len(order), args.batch_size):
                batch = tok(
                    [rendered[j] for j in order[i : i + args.batch_size]],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                out = model.generate(
                    **batch,
                    max_new_tokens=gen_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
                for row in out[:, batch["input_ids"].shape[1] :].tolist():
                    n = next((k for k, t in enumerate(row) if t in end_ids), len(row))
                    tokens += n
        return {"seconds": time.perf_counter() - start, "tokens": tokens}

    quiet = wait_for_quiet_cpu()
    ours()  # warm-up
    plain()
    eval_rows, gen_rows = [], []
    for rep in range(args.reps):
        order = ["qrdistill", "fixed"] if rep % 2 == 0 else ["fixed", "qrdistill"]
        got = {
            side: (qrdistill_eval(rep) if side == "qrdistill" else fixed_length()) for side in order
        }
        fixed_s = got["fixed"]["seconds_measured"] * scale
        eval_rows.append(
            emit(
                {
                    "part": "eval",
                    "rep": rep,
                    "order": order,
                    "seconds/qrdistill_evaluator": round(got["qrdistill"]["seconds"], 2),
                    "completion_tokens/qrdistill": got["qrdistill"]["completion_tokens"],
                    "accuracy/qrdistill": got["qrdistill"]["accuracy"],
                    "seconds_measured/fixed": round(got["fixed"]["seconds_measured"], 2),
                    "fixed_new_tokens_measured": fixed_measured,
                    "seconds/fixed_1024": round(fixed_s, 2),
                    "fixed_1024_extrapolated": scale != 1,
                    "accuracy/fixed": got["fixed"]["accuracy"],
                    "ratio_time_vs_fixed_length": round(got["qrdistill"]["seconds"] / fixed_s, 3),
                }
            )
        )
    for rep in range(args.reps):
        order = ["qrdistill", "plain"] if rep % 2 == 0 else ["plain", "qrdistill"]
        got = {side: (ours() if side == "qrdistill" else plain()) for side in order}
        tps = {s: got[s]["tokens"] / got[s]["seconds"] for s in got}
        gen_rows.append(
            emit(
                {
                    "part": "generate",
                    "rep": rep,
                    "order": order,
                    **{f"tokens/{s}": got[s]["tokens"] for s in got},
                    **{f"seconds/{s}": round(got[s]["seconds"], 2) for s in got},
                    **{f"tokens_per_s/{s}": round(tps[s], 1) for s in got},
                    "ratio_tokens_per_s_vs_generate": round(tps["qrdistill"] / tps["plain"], 3),
                }
            )
        )
    qr_s = median([r["seconds/qrdistill_evaluator"] for r in eval_rows])
    fx_s = median([r["seconds/fixed_1024"] for r in eval_rows])
    tps_q = median([r["tokens_per_s/qrdistill"] for r in gen_rows])
    tps_p = median([r["tokens_per_s/plain"] for r in gen_rows])
    result = emit(
        {
            "measurement": "median",
            "questions": len(examples),
            "batch_size": args.batch_size,
            "seconds/qrdistill_evaluator": qr_s,
            "seconds/fixed_1024": fx_s,
            "fixed_1024_extrapolated_from": fixed_measured if scale != 1 else None,
            "ratio_time_vs_fixed_length": round(qr_s / fx_s, 3),
            "tokens_per_s/qrdistill_generate": tps_q,
            "tokens_per_s/model_generate": tps_p,
            "ratio_tokens_per_s_vs_generate": round(tps_q / tps_p, 3),
            "ratio_tokens_per_s_median_of_reps": median(
                [r["ratio_tokens_per_s_vs_generate"] for r in gen_rows]
            ),
        }
    )
    figures = {
        "time_ratio_vs_fixed_1024_tokens": figure(
            qr_s / fx_s,
            "qrdistill evaluator wall time / fixed 1,024 new tokens"
            + (f" (fixed side extrapolated from {fixed_measured})" if scale != 1 else ""),
            "none: lower is better",
            rounds=[r["ratio_time_vs_fixed_length"] for r in eval_rows],
        ),
        "tokens_per_s_ratio_vs_model_generate": figure(
            tps_q / tps_p,
            "qrdistill generate tokens/s / plain model.generate tokens/s",
            "none: context",
            rounds=[r["ratio_tokens_per_s_vs_generate"] for r in gen_rows],
        ),
    }
    write_results(
        "eval_generation",
        {
            "figures": figures,
            "model": "real packaged SmolLM2-135M-Instruct, float32, cpu",
            "config": {
                "questions": len(examples),
                "task": TASK,
                "batch_size": args.batch_size,
                "reps": args.reps,
                "generate_tokens_budget": gen_tokens,
                "evaluate": eval_cfg.model_dump(mode="json"),
                "fixed_new_tokens": FIXED,
                "fixed_new_tokens_measured": fixed_measured,
                "fixed_extrapolation": "linear in new tokens" if scale != 1 else None,
            },
            "quiet_cpu": quiet,
            "eval": eval_rows,
            "generate": gen_rows,
            "result": result,
        },
    )


if __name__ == "__main__":
    main()
