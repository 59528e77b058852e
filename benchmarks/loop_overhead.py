"""Training tokens per second of qrdistill's own single-student SFT mode against Hugging Face
`Trainer` + peft on the same model, data, batch size and LoRA settings.

    .venv/bin/python benchmarks/loop_overhead.py           # 32 paths, 3 timed epochs per side
    .venv/bin/python benchmarks/loop_overhead.py --small   # 16 paths, 2 timed epochs per side

Model: the real packaged SmolLM2-135M-Instruct, float32, LoRA r=8 alpha=16 dropout 0.05 on
q_proj/v_proj, AdamW lr 2e-4 linear schedule, grad clip 1.0, batch 4, no accumulation.
Data: realistic paths (real GSM8K/StrategyQA questions + real worked solutions, benchmarks/_common.py),
tokenised once by qrdistill (prompt masked, EOS appended); HF Trainer gets exactly those
input_ids/labels, padded dynamically by DataCollatorForSeq2Seq and length-grouped
(train_sampling_strategy="group_by_length"), its best setting for this data. Both sides are
timed per epoch in the same process, alternating (after one untimed warm-up epoch each):
qrdistill through its Recipe.optimizer_step loop, HF through a callback from on_epoch_begin to
on_epoch_end. Tokens are real (non-pad) tokens, prompt + response, the same count on both sides.
Key: `ratio_tokens_per_s_vs_hf_trainer` = qrdistill tokens/s / HF Trainer tokens/s; target >= 1.0.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    emit,
    figure,
    hf_args_summary,
    hf_lora_trainer,
    make_recipe,
    median,
    parse_epoch_args,
    realistic_paths,
    time_recipe_epoch,
    timing_settings,
    wait_for_quiet_cpu,
    write_paths,
    write_results,
)

MODEL = "smollm2-135m-instruct"


def hf_trainer(recipe, out_dir: Path, batch_size: int, lr: float):
    from transformers import TrainerCallback

    from qrdistill.models import resolve_model

    class EpochTimer(TrainerCallback):
        seconds: list[float] = []

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            EpochTimer.seconds.append(time.perf_counter() - self.start)

    name = recipe.names[0]
    trainer = hf_lora_trainer(
        resolve_model(MODEL),
        recipe.data.encoded[name],
        recipe.tokenizers[name],
        out_dir,
        lora={
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            "target_modules": ["q_proj", "v_proj"],
        },
        batch_size=batch_size,
        lr=lr,
        dtype="float32",
        use_cpu=True,
        sampling="group_by_length",
        callbacks=[EpochTimer()],
    )
    return trainer, EpochTimer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    args = parse_epoch_args(parser, small_paths=16, small_reps=2)
    n_paths, reps = args.paths, args.reps

    from qrdistill.training.config import TrainConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    paths_file = write_paths(realistic_paths(n_paths), tmp / "paths.jsonl")
    cfg = TrainConfig(
        students=[{"name": "smollm2-135m", "model": MODEL, "lr": 2e-4}],
        objective="answer_aug",
        routing={"mode": "all"},
        peer={"enabled": False},
        **timing_settings(reps + 2, args.batch_size),
    )
    recipe = make_recipe(cfg, paths_file, tmp / "qrdistill")
    trainer, timer = hf_trainer(recipe, tmp / "hf", args.batch_size, 2e-4)
    name = recipe.names[0]
    tokens = sum(len(e.input_ids) for e in recipe.data.encoded[name])

    quiet = wait_for_quiet_cpu()
    qr_s, hf_s, rounds = [], [], []
    for rnd in range(reps + 1):  # round 0 is a warm-up
        order = ["qrdistill", "hf_trainer"] if rnd % 2 == 0 else ["hf_trainer", "qrdistill"]
        got = {}
        for side in order:
            if side == "qrdistill":
                got[side] = time_recipe_epoch(recipe, rnd)["seconds"]
            else:
                with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its metrics dict
                    trainer.train()
                got[side] = timer.seconds[-1]
        if rnd == 0:
            continue
        qr_s.append(got["qrdistill"])
        hf_s.append(got["hf_trainer"])
        rounds.append(
            emit(
                {
                    "round": rnd,
                    "order": order,
                    "epoch_s/qrdistill": round(got["qrdistill"], 2),
                    "epoch_s/hf_trainer": round(got["hf_trainer"], 2),
                    "ratio_tokens_per_s_vs_hf_trainer": round(
                        got["hf_trainer"] / got["qrdistill"], 3
                    ),
                }
            )
        )
    qr_tps, hf_tps = tokens / median(qr_s), tokens / median(hf_s)
    result = emit(
        {
            "measurement": "median",
            "paths": n_paths,
            "real_tokens_per_epoch": tokens,
            "tokens_per_s/qrdistill": round(qr_tps, 1),
            "tokens_per_s/hf_trainer": round(hf_tps, 1),
            "ratio_tokens_per_s_vs_hf_trainer": round(qr_tps / hf_tps, 3),
        }
    )
    figures = {
        "tokens_per_s_ratio_vs_hf_trainer": figure(
            qr_tps / hf_tps,
            "qrdistill tokens/s / HF Trainer tokens/s",
            ">= 1.0",
            rounds=[r["ratio_tokens_per_s_vs_hf_trainer"] for r in rounds],
        ),
        "tokens_per_s/qrdistill": figure(qr_tps, "real tokens/s", "none: context"),
        "tokens_per_s/hf_trainer": figure(hf_tps, "real tokens/s", "none: context"),
    }
    write_results(
        "loop_overhead",
        {
            "figures": figures,
            "model": "real packaged SmolLM2-135M-Instruct, float32, LoRA r=8 alpha=16 dropout=0.05 on q_proj/v_proj",
            "data": f"{n_paths} realistic paths (real GSM8K/StrategyQA questions + real solutions, templated)",
            "config": {
                "qrdistill": cfg.model_dump(mode="json"),
                "hf_trainer": hf_args_summary(trainer),
            },
            "quiet_cpu": quiet,
            "rounds": rounds,
            "result": result,
        },
    )


if __name__ == "__main__":
    main()
