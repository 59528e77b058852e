"""Forward + backward time of the per-path token loss on one real logits shape, three layouts:

    qrdistill   `objective.per_path_loss` as shipped: fp32 logits as flat [tokens, vocab] rows
    spatial     the layout it used before: a [B, vocab, T] view, which sends F.cross_entropy to
                its spatial (nll_loss2d) kernels
    hf          transformers' ForCausalLMLoss arithmetic: fp32 logits, flat rows, one summed loss

    PYTHONPATH=src python benchmarks/loss_layout.py            # CUDA: [8, 1024, 151936] (Qwen2.5's vocabulary)
    PYTHONPATH=src python benchmarks/loss_layout.py --small    # CPU: [4, 256, 49152] (SmolLM2's vocabulary)

Random bf16 logits (fp32 on the CPU) with gradient, random labels with the first 1/8 of each row
masked as prompt. Each layout: 2 untimed calls, then --iters timed calls, per round; rounds
alternate the order of the layouts; medians over rounds. Results:
benchmarks/results/loss_layout.json (--small: loss_layout_small.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import emit, figure, summary, write_results  # noqa: E402


def layouts(logits, labels):
    import torch.nn.functional as F

    from qrdistill.training.objective import per_path_loss

    targets = labels[:, 1:]
    vocab = logits.shape[-1]
    return {
        "qrdistill": lambda: per_path_loss(logits, labels)[0].sum(),
        "spatial": lambda: F.cross_entropy(
            logits[:, :-1].float().transpose(1, 2), targets, ignore_index=-100, reduction="none"
        ).sum(),
        "hf": lambda: F.cross_entropy(
            logits.float()[:, :-1].reshape(-1, vocab),
            targets.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        ),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="CPU shape, fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--iters", type=int, default=None, help="timed calls (default 10, --small 3)"
    )
    args = parser.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.small
    if not cuda and not args.small:
        sys.exit("no CUDA GPU: run with --small for the CPU shape")
    batch, length, vocab = (8, 1024, 151936) if cuda else (4, 256, 49152)
    iters = args.iters or (10 if cuda else 3)
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gen = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(batch, length, vocab, device=device, dtype=dtype, generator=gen)
    logits.requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, length), device=device, generator=gen)
    labels[:, : length // 8] = -100
    fns = layouts(logits, labels)

    def call(fn) -> None:
        fn().backward()
        logits.grad = None

    times: dict[str, list[float]] = {name: [] for name in fns}
    for rnd in range(args.rounds):
        for name in list(fns) if rnd % 2 == 0 else list(fns)[::-1]:
            for _ in range(2):
                call(fns[name])
            sync()
            start = time.perf_counter()
            for _ in range(iters):
                call(fns[name])
            sync()
            times[name].append((time.perf_counter() - start) / iters * 1e3)
            emit(
                {"round": rnd, "layout": name, "ms_per_forward_backward": round(times[name][-1], 2)}
            )
    stats = {name: summary(values) for name, values in times.items()}
    ms = {name: s["median"] for name, s in stats.items()}
    figures = {
        f"loss_ms/{name}": figure(ms[name], "ms per forward + backward (median of rounds)")
        for name in fns
    }
    figures["qrdistill_over_hf"] = figure(
        ms["qrdistill"] / ms["hf"], "x (time ratio of medians)", "<= 1.0"
    )
    figures["spatial_over_qrdistill"] = figure(ms["spatial"] / ms["qrdistill"], "x (time ratio)")
    report = {
        "figures": figures,
        "setup": {
            "shape": [batch, length, vocab],
            "dtype": str(dtype),
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "iters": iters,
            "rounds": args.rounds,
        },
        "results": stats,
        "rounds": times,
    }
    write_results("loss_layout_small" if args.small else "loss_layout", report)
    for key, fig in figures.items():
        emit({"figure": key, **fig})
    return report


if __name__ == "__main__":
    main()
