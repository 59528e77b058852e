"""Conditional routing (METHOD.md Stage 3): frozen-encoder embeddings -> MLP -> one gate per student.

Gates are straight-through binary-concrete (a 2-way Gumbel-softmax per student written with a
logistic noise): the forward value is a hard 0/1, so a path goes to any subset of students, and
the backward pass goes through the relaxed sigmoid, so the router gets a real gradient.

Router objective (the sign problem). The router is trained by the students' per-path losses
weighted by the gates. Minimising sum_i g_is * loss_is directly would push every gate to 0
(losses are positive, so routing nothing is optimal). We therefore measure each per-path loss
against that student's running mean loss b_s (an exponential moving average over all paths, so
"what this student currently finds typical"): the gated term is
    sum_i g_is * (loss_is - b_s) / n_s        (n_s = number of paths routed to s, detached).
Its gradient for g_is is (loss_is - b_s) / n_s: a path is pushed towards the students for which it
is easier than usual (the ones that currently learn well from it, "each student's current
learning state") and away from the ones it confuses. b_s is detached, so the students' own
gradient is unchanged: each student minimises the mean loss over the paths routed to it. The
entropy regulariser of METHOD.md, computed on the noiseless probabilities so it has a gradient,
keeps the mean gate away from "route nothing" and "route everything".
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import torch
from torch import nn

from qrdistill.utils.io import atomic_open


class Router(nn.Module):
    def __init__(self, in_dim: int, n_students: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, n_students))
        # Running mean per-path loss of each student; NaN until the first batch sets it.
        self.register_buffer("baseline", torch.full((n_students,), float("nan")))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.mlp(embeddings)

    @torch.no_grad()
    def update_baseline(self, batch_mean_loss: torch.Tensor, momentum: float) -> None:
        """`batch_mean_loss`: each student's mean per-path loss over the (all-ranks) batch."""
        fresh = torch.isnan(self.baseline)
        blended = momentum * self.baseline + (1 - momentum) * batch_mean_loss
        self.baseline.copy_(torch.where(fresh, batch_mean_loss, blended))


def logistic_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Difference of two Gumbels = logistic noise: the binary case of Gumbel-softmax."""
    u = torch.rand(shape, generator=generator).clamp(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


class _HardThreshold(torch.autograd.Function):
    """Forward: exactly 0/1 (`hard + soft - soft.detach()` is off by rounding); backward: identity."""

    @staticmethod
    def forward(ctx, soft: torch.Tensor) -> torch.Tensor:
        return (soft > 0.5).to(soft.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def straight_through_gates(logits: torch.Tensor, noise: torch.Tensor, tau: float) -> torch.Tensor:
    """Hard 0/1 gates in the forward pass, gradient of sigmoid((logits + noise) / tau) backward."""
    return _HardThreshold.apply(torch.sigmoid((logits + noise.to(logits.device)) / tau))


def random_gates(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """The random-routing ablation: each (path, student) with probability 1/2, at least one each."""
    gates = (torch.rand(shape, generator=generator) < 0.5).float()
    fallback = torch.randint(shape[1], (shape[0],), generator=generator)
    empty = gates.sum(1) == 0
    gates[empty, fallback[empty]] = 1.0
    return gates


def entropy_regulariser(probs: torch.Tensor) -> torch.Tensor:
    """METHOD.md's L_entropy of the mean gate (to be maximised). Computed on the noiseless gate
    probabilities, whose mean has a gradient (the mean of hard gates would not)."""
    abar = probs.mean().clamp(1e-6, 1 - 1e-6)
    return -(abar * abar.log() + (1 - abar) * (1 - abar).log())


def gated_distill_loss(per_path: torch.Tensor, gates: torch.Tensor,
                       baseline: torch.Tensor | None) -> torch.Tensor:
    """Per-student gated objective, shape [S] (see the module docstring for why the baseline).

    per_path: [B, S] per-path losses; gates: [B, S] straight-through gates (or constant 0/1);
    baseline: [S] detached running mean loss, or None when the gates are not learned.
    """
    routed = gates.detach()
    count = routed.sum(0).clamp(min=1.0)
    if baseline is None:
        centred = per_path
    else:  # before the first update the batch's own mean stands in for the running mean
        baseline = torch.where(torch.isnan(baseline), per_path.detach().mean(0), baseline).detach()
        centred = per_path - baseline
    # The baseline only shifts the router's signal: on paths with gate 1 the student's gradient
    # is that of its per-path loss, on paths with gate 0 it gets none.
    return (gates * centred).sum(0) / count


def tau_at(step: int, total: int, start: float, end: float) -> float:
    """Exponential annealing of the Gumbel temperature from `start` to `end`."""
    frac = min(1.0, step / max(1, total))
    return start * math.exp(frac * math.log(end / start))


def step_generator(seed: int, micro_step: int) -> torch.Generator:
    """Routing noise for one micro-step, drawn for the whole global batch: identical on every
    rank (each rank takes its rows), and independent of where a resumed run restarted."""
    return torch.Generator().manual_seed((seed * 1_000_003 + 7919 * micro_step) % (2 ** 63))


def _slug(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9]+', '_', name)[-40:]}-{digest}"


def embed_texts(texts: list[str], encoder: str, cache_dir: Path) -> torch.Tensor:
    """Frozen-encoder embeddings [N, d], cached on disk per (encoder, sha256 of the text).

    The encoder is frozen (METHOD.md), so each text is embedded once for all runs and epochs.
    """
    from qrdistill.models import resolve_model

    cache_file = Path(cache_dir) / f"{_slug(encoder)}.pt"
    store: dict[str, torch.Tensor] = torch.load(cache_file) if cache_file.exists() else {}
    keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in store}.items())
    if missing:
        from sentence_transformers import SentenceTransformer

        # A plain HF encoder folder gets sentence-transformers' default mean pooling.
        model = SentenceTransformer(resolve_model(encoder), device="cpu", trust_remote_code=False)
        vectors = model.encode([t for _, t in missing], convert_to_tensor=True, batch_size=64,
                               show_progress_bar=False).float().cpu()
        store.update({k: v.clone() for (k, _), v in zip(missing, vectors)})
        with atomic_open(cache_file, "wb", encoding=None) as handle:
            torch.save(store, handle)
    return torch.stack([store[k] for k in keys])
