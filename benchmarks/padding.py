"""Share of processed token positions that are real tokens: qrdistill's batching (length-grouped
batches from `training.data.epoch_batches`, then dynamic right padding to the longest path of the
batch in `training.data.collate`, per student tokenizer) against padding every path to a fixed
768 positions as the authors' code did. Also shown: dynamic padding without length grouping.

Routed: what a student really computes in the sparse step. Each batch is collated by
`training.data.collate` and each student keeps its routed paths with `training.objective.select_rows`
(random routing, as `routing.mode: random`: each gate open with probability 1/2, at least one
student per path), right-padded (the default) or padding-free (`padding_free: true`); the share
is real tokens over the positions of the tensors the student would be given.

    .venv/bin/python benchmarks/padding.py            # 512 realistic paths (+ any runs/*/generate/paths.jsonl)
    .venv/bin/python benchmarks/padding.py --small    # 128 realistic paths
    .venv/bin/python benchmarks/padding.py --paths runs/x/generate/paths.jsonl

Realistic paths: real GSM8K / StrategyQA questions with their real worked solutions or
explanations wrapped in a style opening and the task's answer line (benchmarks/_common.py).
Token counts come from the real tokenizers of SmolLM2-135M-Instruct and Gemma-3-270M, prompts
rendered exactly as training renders them. No model is run; nothing is timed.
Key: `real_token_share` (qrdistill), target at least 0.9; `routed_real_token_share/padding_free`,
target 1.0 (figures).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, figure, median, realistic_paths, write_paths, write_results  # noqa: E402

FIXED = 768


def shares(encoded: dict, lengths: list[int], batch: int, epochs: int, seed: int) -> dict:
    """Real-token share per student for the three batching schemes, median over epochs."""
    import torch

    from qrdistill.training.data import epoch_batches

    out = {}
    for name, enc in encoded.items():
        real = [len(e.input_ids) for e in enc]
        grouped, random_order = [], []
        for epoch in range(epochs):
            for scheme, batches in (
                ("grouped", epoch_batches(lengths, batch, seed, epoch)),
                ("random", _random_batches(len(real), batch, seed, epoch, torch)),
            ):
                # collate pads each student's batch to that student's longest path in it
                positions = sum(len(b) * max(real[i] for i in b) for b in batches)
                (grouped if scheme == "grouped" else random_order).append(sum(real) / positions)
        fixed = sum(min(r, FIXED) for r in real) / (len(real) * FIXED)
        out[name] = {
            "qrdistill": median(grouped),
            "dynamic_no_grouping": median(random_order),
            "fixed_768": fixed,
            "mean_tokens": sum(real) / len(real),
            "max_tokens": max(real),
            "min_tokens": min(real),
            "over_768": sum(r > FIXED for r in real),
        }
    return out


def _random_batches(n: int, batch: int, seed: int, epoch: int, torch) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed * 7 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    return [order[i : i + batch] for i in range(0, n, batch)]


def routed_shares(data, lengths: list[int], batch: int, epochs: int, seed: int) -> dict:
    """Real-token share of what each student computes in the sparse step, per layout: real tokens
    / positions of its `select_rows` tensors, summed over `epochs` length-grouped epochs."""
    import torch

    from qrdistill.training.data import collate, epoch_batches
    from qrdistill.training.objective import select_rows
    from qrdistill.training.router import decide_gates, logistic_noise

    names = list(data.encoded)
    real = dict.fromkeys(names, 0)
    positions = {(n, free): 0 for n in names for free in (False, True)}
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for paths in epoch_batches(lengths, batch, seed, epoch):
            noise = logistic_noise((len(paths), len(names)), generator)
            no_explore = torch.zeros(len(paths), dtype=torch.bool)
            gates = decide_gates(
                torch.zeros_like(noise),
                noise,
                no_explore,
                students_per_path=None,
                min_students=1,
            )
            for s, name in enumerate(names):
                rows = gates[:, s].nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                encoded = [data.encoded[name][i] for i in paths]
                real[name] += sum(len(encoded[r].input_ids) for r in rows.tolist())
                for free in (False, True):
                    sub = select_rows(collate(encoded, 0, padding_free=free), rows)
                    positions[name, free] += sub["input_ids"].numel()
    return {
        name: {
            "padded": real[name] / positions[name, False],
            "padding_free": real[name] / positions[name, True],
        }
        for name in names
    }


def measure(
    paths_file: Path, source: str, tokenizers: dict, batches: list[int], epochs: int
) -> list[dict]:
    from qrdistill.training.config import TrainConfig
    from qrdistill.training.data import build_data

    cfg = TrainConfig(
        students=[{"name": n, "model": n} for n in tokenizers],
        objective="answer_aug",
        routing={"mode": "all"},
        peer={"enabled": False},
        max_length=4096,
    )
    data = build_data(paths_file, cfg, tokenizers)
    lengths = data.lengths()
    rows = []
    for batch in batches:
        per_student = shares(data.encoded, lengths, batch, epochs, seed=0)
        routed = routed_shares(data, lengths, batch, epochs, seed=0)
        for name, s in per_student.items():
            rows.append(
                emit(
                    {
                        "source": source,
                        "paths": len(data),
                        "student": name,
                        "batch_size": batch,
                        "real_token_share": round(s["qrdistill"], 4),
                        "real_token_share_dynamic_no_grouping": round(s["dynamic_no_grouping"], 4),
                        "real_token_share_fixed_768": round(s["fixed_768"], 4),
                        "routed_real_token_share/padded": round(routed[name]["padded"], 4),
                        "routed_real_token_share/padding_free": round(
                            routed[name]["padding_free"], 4
                        ),
                        "ratio_processed_positions_fixed_over_qrdistill": round(
                            s["qrdistill"] / s["fixed_768"], 2
                        ),
                        "mean_tokens": round(s["mean_tokens"], 1),
                        "min_tokens": s["min_tokens"],
                        "max_tokens": s["max_tokens"],
                        "paths_over_768": s["over_768"],
                        "epochs": epochs,
                    }
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument(
        "--paths",
        type=Path,
        nargs="*",
        default=None,
        help="real generated paths.jsonl files (default: any under runs/*/generate/)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument(
        "--epochs", type=int, default=5, help="epochs (batch orders) to take the median over"
    )
    args = parser.parse_args()
    n = 128 if args.small else 512

    from qrdistill.models import load_tokenizer

    tokenizers = {
        "smollm2-135m-instruct": load_tokenizer("smollm2-135m-instruct"),
        "gemma3-270m": load_tokenizer("gemma3-270m"),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = write_paths(realistic_paths(n), Path(tmp) / "paths.jsonl")
        rows += measure(
            synthetic,
            "realistic (real GSM8K/StrategyQA questions + real solutions)",
            tokenizers,
            args.batch_sizes,
            args.epochs,
        )
    generated = (
        args.paths
        if args.paths is not None
        else sorted(Path("runs").glob("**/generate/paths.jsonl"))
    )
    for path in generated:
        try:
            rows += measure(path, f"generated: {path}", tokenizers, args.batch_sizes, args.epochs)
        except ValueError as error:  # e.g. an empty or unfinished file
            print(f"skipped {path}: {error}", file=sys.stderr)
    main_rows = [r for r in rows if r["source"].startswith("realistic")]
    share = min(r["real_token_share"] for r in main_rows)
    routed = {
        layout: min(r[f"routed_real_token_share/{layout}"] for r in main_rows)
        for layout in ("padded", "padding_free")
    }
    unit = "real tokens / processed positions, min over students and batch sizes"
    figures = {
        "real_token_share": figure(share, unit, ">= 0.9"),
        "routed_real_token_share/padded": figure(
            routed["padded"], unit + ", sparse routed step", "none: today's default, for comparison"
        ),
        "routed_real_token_share/padding_free": figure(
            routed["padding_free"], unit + ", sparse routed step", ">= 1.0"
        ),
    }
    write_results(
        "padding",
        {
            "figures": figures,
            "config": {
                "realistic_paths": n,
                "batch_sizes": args.batch_sizes,
                "epochs": args.epochs,
                "fixed_length": FIXED,
                "group_factor": 16,
                "generated_files": [str(p) for p in generated],
            },
            "summary": {
                "real_token_share_min_over_students_and_batches": share,
                "target": 0.9,
            },
            "measurements": rows,
        },
    )


if __name__ == "__main__":
    main()
