"""Conditional routing (docs/METHOD.md, "Routing"): frozen-encoder embeddings -> MLP -> one gate
per (path, student).

What the router decides. For path i and student s the router gives a logit l_is and the gate
probability p_is = sigmoid(l_is / tau), with tau annealed from `tau_start` to `tau_end`. The
hard gate is drawn as g_is = 1[l_is / tau + n_is > 0] with logistic noise n_is (the binary case
of Gumbel-max), so P(g_is = 1) = p_is exactly. A path then goes to any subset of students; if
fewer than `min_students_per_path` gates opened, the students with the largest l_is / tau + n_is
are added, so no path is left unrouted. A student computes forward and backward on its routed
paths only: a zero gate costs it nothing.

What the router learns from. Routing follows the students' learning state *comparatively*:
a path should go to the students for which it is easier than for the other students on that
same path. Only losses computed in this very step are compared, on the paths that at least two
students computed (the Gumbel noise keeps such paths coming). On those rows the signal is the
interaction of path and student in a two-way layout,
    r_is = L_is - mean_s' L_is' - (that difference averaged over the batch's shared rows for s),
re-centred per row: subtracting the path mean removes the path's difficulty, which every student
shares and which says nothing about fit; subtracting the student's batch mean removes its
overall level (students with other tokenizers have other loss scales, and one that improves
faster overall must not win every path). r_is is 0 where s did not compute path i, on rows only
one student computed, and in a batch with fewer than two shared rows.

The router minimises sum_s p_is * r_is (plus the entropy regulariser). Because P(g_is = 1) =
p_is, its gradient p_is (1 - p_is) r_is / tau is the exact gradient of E[sum_s g_is r_is] with
r held fixed: no straight-through bias and no noise variance from the gate sampling. It uses
only losses the routed step computed anyway, so it costs nothing, and since nothing is stored
it is never stale. Why not remembered losses: a student's losses fall as it trains, so its fresh
losses beat the other's older ones and routing collapses onto whichever student trained more
(tested).
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
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, n_students)
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.mlp(embeddings)


def comparative_signal(losses: torch.Tensor) -> torch.Tensor:
    """r [B, S] from this step's per-pair losses [B, S] (NaN where the pair was not computed)."""
    computed = ~torch.isnan(losses)
    shared = computed & (computed.sum(1, keepdim=True) >= 2)
    centred = torch.where(shared, losses - _nanmean(losses, dim=1, keepdim=True), torch.nan)
    centred = centred - _nanmean(centred, dim=0, keepdim=True)  # the student's level in this batch
    centred = centred - _nanmean(centred, dim=1, keepdim=True)  # rows sum to 0 again (S > 2)
    return torch.nan_to_num(centred, nan=0.0).detach()


def _nanmean(values: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    known = ~torch.isnan(values)
    total = torch.where(known, values, torch.zeros_like(values)).sum(dim, keepdim=keepdim)
    count = known.sum(dim, keepdim=keepdim)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def logistic_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Difference of two Gumbels = logistic noise: the binary case of Gumbel-max."""
    u = torch.rand(shape, generator=generator).clamp(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


@torch.no_grad()
def sample_gates(scores: torch.Tensor, noise: torch.Tensor, min_students: int) -> torch.Tensor:
    """Hard 0/1 gates [B, S]: open where scores + noise > 0, then top up every path to at least
    `min_students` open gates with its highest-scoring closed ones. `scores` are l / tau
    (learned routing) or zeros (random routing: each gate open with probability 1/2)."""
    perturbed = scores + noise.to(scores.device)
    gates = (perturbed > 0).to(scores.dtype)
    if min_students > 0:
        rank = perturbed.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = highest
        gates = torch.maximum(gates, (rank < min_students).to(scores.dtype))
    return gates


def router_loss(probs: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """sum_s p_is r_is, averaged over the batch's paths (see the module docstring)."""
    return (probs * signal).sum(1).mean()


def entropy_regulariser(probs: torch.Tensor) -> torch.Tensor:
    """L_entropy of the mean gate probability (to be maximised): keeps the router away from
    "route nothing" and "route everything"."""
    abar = probs.mean().clamp(1e-6, 1 - 1e-6)
    return -(abar * abar.log() + (1 - abar) * (1 - abar).log())


def tau_at(step: int, total: int, start: float, end: float) -> float:
    """Exponential annealing of the gate temperature from `start` to `end`."""
    frac = min(1.0, step / max(1, total))
    return start * math.exp(frac * math.log(end / start))


def step_generator(seed: int, micro_step: int) -> torch.Generator:
    """Routing noise for one micro-step, drawn for the whole global batch: identical on every
    rank (each rank takes its rows), and independent of where a resumed run restarted."""
    return torch.Generator().manual_seed((seed * 1_000_003 + 7919 * micro_step) % (2**63))


def no_preference_band(rate: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Where the routed share of n paths falls with probability `level` if every path were routed
    independently at the same `rate`: the central binomial interval, as shares of n."""
    if n <= 0:
        return (0.0, 1.0)
    rate = min(max(rate, 0.0), 1.0)
    if rate in (0.0, 1.0):
        return (rate, rate)
    tail = (1 - level) / 2
    log_pmf = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(rate)
        + (n - k) * math.log1p(-rate)
        for k in range(n + 1)
    ]
    pmf = [math.exp(v) for v in log_pmf]

    def first_past_tail(order) -> int:
        total = 0.0
        for k in order:
            total += pmf[k]
            if total > tail:
                return k
        return order[-1]

    return (first_past_tail(range(n + 1)) / n, first_past_tail(range(n, -1, -1)) / n)


def _slug(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9]+', '_', name)[-40:]}-{digest}"


def embed_texts(texts: list[str], encoder: str, cache_dir: Path) -> torch.Tensor:
    """Frozen-encoder embeddings [N, d], cached on disk per (encoder, sha256 of the text).

    The encoder is frozen (docs/METHOD.md, "Routing"), so each text is embedded once for all runs and epochs.
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
        vectors = (
            model.encode(
                [t for _, t in missing],
                convert_to_tensor=True,
                batch_size=64,
                show_progress_bar=False,
            )
            .float()
            .cpu()
        )
        store.update({k: v.clone() for (k, _), v in zip(missing, vectors)})
        with atomic_open(cache_file, "wb", encoding=None) as handle:
            torch.save(store, handle)
    return torch.stack([store[k] for k in keys])
