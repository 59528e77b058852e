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
same path. `last_loss[i, s]` holds student s's loss on path i from the last time that pair was
trained (NaN until then). The signal is the interaction of path and student,
    r_is = (L_is - m_s) - mean_{s' known} (L_is' - m_s'),
where m_s is student s's mean over its known losses. Subtracting m_s removes the student's
overall level (different tokenizers have different loss scales); subtracting the path mean
removes the path's difficulty, which every student shares and which says nothing about fit.
r_is is 0 where L_is is unknown or no other student has a loss for the path.

The router minimises sum_s p_is * r_is (plus the entropy regulariser). Because P(g_is = 1) =
p_is, its gradient p_is (1 - p_is) r_is / tau is the exact gradient of E[sum_s g_is r_is] with
r held fixed: no straight-through bias and no noise variance from the gate sampling. The
estimator's bias is the staleness of `last_loss` (a pair's loss is as old as its last training
step) and its cost is nothing beyond the routed forward passes already done.
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
    def __init__(self, in_dim: int, n_students: int, hidden: int, n_paths: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, n_students))
        # Each (path, student)'s loss from the last time that pair was trained; NaN = never.
        # A buffer, so checkpoints and resume carry it with the router's weights.
        self.register_buffer("last_loss", torch.full((n_paths, n_students), float("nan")))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.mlp(embeddings)

    @torch.no_grad()
    def remember(self, items: torch.Tensor, losses: torch.Tensor) -> None:
        """Store freshly computed losses [len(items), S]; NaN entries (not computed) keep the old value."""
        fresh = ~torch.isnan(losses)
        current = self.last_loss[items]
        self.last_loss[items] = torch.where(fresh, losses.to(current), current)

    def comparative_signal(self, losses: torch.Tensor) -> torch.Tensor:
        """r_is for a batch whose best-known losses are `losses` [B, S] (NaN = unknown). Until a
        student has a remembered loss, the batch's own losses give its mean."""
        mean = _nanmean(self.last_loss, dim=0)
        mean = torch.where(torch.isnan(mean), _nanmean(losses, dim=0), mean)
        return comparative_signal(losses, mean)


def comparative_signal(losses: torch.Tensor, student_mean: torch.Tensor) -> torch.Tensor:
    """(L_is - m_s) - mean over the path's known students; 0 where unknown or alone on the path."""
    known = ~torch.isnan(losses)
    residual = torch.where(known, losses - torch.nan_to_num(student_mean, nan=0.0), torch.zeros_like(losses))
    n_known = known.sum(1, keepdim=True)
    path_mean = residual.sum(1, keepdim=True) / n_known.clamp(min=1)
    return torch.where(known & (n_known >= 2), residual - path_mean, torch.zeros_like(losses)).detach()


def _nanmean(values: torch.Tensor, dim: int) -> torch.Tensor:
    known = ~torch.isnan(values)
    total = torch.where(known, values, torch.zeros_like(values)).sum(dim)
    count = known.sum(dim)
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
    return torch.Generator().manual_seed((seed * 1_000_003 + 7919 * micro_step) % (2 ** 63))


def no_preference_band(rate: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Where the routed share of n paths falls with probability `level` if every path were routed
    independently at the same `rate`: the central binomial interval, as shares of n."""
    if n <= 0:
        return (0.0, 1.0)
    rate = min(max(rate, 0.0), 1.0)
    if rate in (0.0, 1.0):
        return (rate, rate)
    tail = (1 - level) / 2
    log_pmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
               + k * math.log(rate) + (n - k) * math.log1p(-rate) for k in range(n + 1)]
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

    The encoder is frozen (docs/METHOD.md), so each text is embedded once for all runs and epochs.
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
