"""Conditional routing (docs/METHOD.md, "Routing"): frozen-encoder embeddings -> a closed-form
Bayesian regression -> one gate per (path, student), opened on evidence only.

What the router estimates. On a path that at least two students computed in this step, the
centred loss c_is = L_is - mean over those students of L_is' (L in nats per character, so
tokenizers do not matter) removes the path's difficulty. Per student, c_is is regressed on
x_i = [1, whitened leading principal components of the path's embedding]: the intercept is the
student's level (its tokenizer, how far it has trained), the slopes the path x student
interaction. The fit is ridge regression in closed form from discounted sufficient statistics
(sum x x^T, sum x c), so it has a unique minimum, costs O(S d^3) for d = components + 1 per
step, and gives the exact posterior standard error of every prediction.

What the router decides. The advantage a_is (slopes only, re-centred over students) and its
standard error se_is give t_is = a_is / se_is; the gate logit is
    l_is = -sign(t_is) * max(0, |t_is| - margin) / tau,
so under a zero-mean signal (|t| within the margin) every gate stays at 1/2 and routing is
random, and a real interaction opens the gate of the student it suits once the evidence exceeds
`margin` standard errors. `decide_gates` turns logits into hard gates for every routing mode:
an exploration share of paths goes to every student (the evidence), the rest either to the k
students with the largest l + logistic noise (a compute budget) or, as in the paper, to every
student with l + noise > 0, topped up to `min_students_per_path`. P(g_is = 1) = sigmoid(l_is)
holds for free subsets without top-up and outside the exploration share only; otherwise the
open rate is higher (2 students at p = 1/2, top-up to 1: 0.625; exploration share e:
e + (1 - e) * that).
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
    """A Bayesian linear regression per student of its centred loss on the frozen path embedding,
    fitted in closed form from the shared pairs (module docstring). No parameter has a gradient:
    the fit is its sufficient statistics, kept as buffers so a checkpoint carries them."""

    def __init__(
        self,
        reference: torch.Tensor,
        n_students: int,
        *,
        components: int,
        prior: float,
        forget: float,
    ):
        super().__init__()
        self.prior, self.forget = prior, forget
        # Features: the leading principal components of the training paths' embeddings, whitened
        # (unit variance each, so one prior strength means the same on all). Centred on those
        # paths' mean, so the intercept is a student's level over them and the slopes' prediction
        # is the interaction alone. Derived from the data, so not saved: a resumed run passes the
        # same paths.
        reference = reference.float()
        centre = reference.mean(0)
        # The covariance's eigenpairs from the SVD of the centred paths, in float64: a few paths,
        # or paths with identical texts, give a covariance with many equal (zero) eigenvalues,
        # on which float32 `eigh` can fail to converge.
        spread = (reference - centre).double()
        _, singular, right = torch.linalg.svd(spread, full_matrices=False)  # largest first
        # Directions the paths do not span (fewer distinct paths than components) would be
        # whitened rounding noise: kept are those well above float32 rounding of the embeddings.
        # None spanned (every path's text the same): no slopes, nothing tells paths apart.
        spanned = int((singular > 1e-5 * reference.double().norm()).sum())
        keep = min(components, spanned)
        values = (singular[:keep] ** 2 / max(1, len(reference) - 1)).float()
        vectors = right[:keep].T.float()
        self.register_buffer("centre", centre, persistent=False)
        self.register_buffer("basis", vectors / values.sqrt(), persistent=False)
        dim = keep + 1  # the intercept (the student's level), then the slopes
        self.register_buffer("gram", torch.zeros(n_students, dim, dim))  # discounted sum x x^T
        self.register_buffer("moment", torch.zeros(n_students, dim))  # discounted sum x c
        # Discounted sum of squared prediction residuals and their count: the residual variance.
        self.register_buffer("residual", torch.zeros(2))

    def features(self, embeddings: torch.Tensor) -> torch.Tensor:
        slopes = (embeddings.float() - self.centre) @ self.basis
        return torch.cat([slopes.new_ones(len(slopes), 1), slopes], dim=1)

    def _posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [S, D] and covariance / noise variance [S, D, D] of the coefficients. The
        intercept gets a vanishing prior: a student's level is not shrunk, it is removed."""
        ridge = torch.full((self.gram.shape[1],), self.prior, device=self.gram.device)
        ridge[0] = 1e-6
        precision = self.gram + torch.diag(ridge)
        return torch.linalg.solve(precision, self.moment), torch.linalg.inv(precision)

    @property
    def noise(self) -> torch.Tensor:
        """The residual variance of the centred losses (nats per character, squared); 0 until the
        fit has as many observations as coefficients, so no decision rests on fewer."""
        squared, count = self.residual
        enough = count >= self.gram.shape[1]
        return torch.where(enough, squared / count.clamp(min=1), torch.zeros_like(squared))

    @torch.no_grad()
    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, d] -> each student's advantage on each path [B, S] (its predicted centred loss
        minus its level, re-centred over the students: negative = suits it) and the standard
        error of that prediction [B, S], both in nats per character."""
        x = self.features(embeddings)
        if self.noise == 0:
            zeros = torch.zeros(x.shape[0], self.gram.shape[0], device=x.device)
            return zeros, zeros
        mean, cov = self._posterior()
        slopes = x[:, 1:]
        advantage = slopes @ mean[:, 1:].T
        se = torch.einsum("bi,sij,bj->bs", slopes, cov[:, 1:, 1:], slopes).clamp(min=0).sqrt()
        return advantage - advantage.mean(1, keepdim=True), se * self.noise.sqrt()

    @torch.no_grad()
    def observe(self, embeddings: torch.Tensor, centred: torch.Tensor) -> torch.Tensor:
        """Add one step's shared pairs (`centred` from `row_centred`, NaN elsewhere) to the fit,
        after discounting the older evidence by `forget`; every rank adds the same sums. Returns
        the mean squared standardised residual of the predictions made before this step's
        evidence (the router's fit, logged as its loss term)."""
        x = self.features(embeddings)
        shared = (~torch.isnan(centred)).float()  # [B, S]
        target = torch.nan_to_num(centred, nan=0.0)
        residual = (target - x @ self._posterior()[0].T) * shared
        sums = torch.cat(
            [
                torch.einsum("bs,bi,bj->sij", shared, x, x).flatten(),
                torch.einsum("bs,bi,bs->si", shared, x, target).flatten(),
                torch.stack([residual.pow(2).sum(), shared.sum()]),
            ]
        )
        sums = _sum_over_ranks(sums)
        noise = self.noise
        n_gram, n_moment = self.gram.numel(), self.moment.numel()
        self.gram.mul_(self.forget).add_(sums[:n_gram].view_as(self.gram))
        self.moment.mul_(self.forget).add_(sums[n_gram : n_gram + n_moment].view_as(self.moment))
        self.residual.mul_(self.forget).add_(sums[-2:])
        if sums[-1] == 0 or noise == 0:
            return torch.zeros((), device=x.device)
        return sums[-2] / sums[-1] / noise


def _sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def row_centred(losses: torch.Tensor) -> torch.Tensor:
    """c [B, S] from one step's per-pair losses [B, S] (NaN where the pair was not computed):
    each loss minus the mean over the students that computed the path, on rows at least two
    students computed; NaN elsewhere. Subtracting the path mean removes its difficulty."""
    computed = ~torch.isnan(losses)
    shared = computed & (computed.sum(1, keepdim=True) >= 2)
    return torch.where(shared, losses - _nanmean(losses, dim=1, keepdim=True), torch.nan).detach()


def _nanmean(values: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    known = ~torch.isnan(values)
    total = torch.where(known, values, torch.zeros_like(values)).sum(dim, keepdim=keepdim)
    count = known.sum(dim, keepdim=keepdim)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def gate_scores(
    advantage: torch.Tensor, se: torch.Tensor, margin: float, tau: float
) -> torch.Tensor:
    """Gate logits [B, S] from the evidence: the advantage in standard errors (a t statistic),
    shrunk towards 0 by `margin` and 0 within it (no evidence, no preference), over tau. A
    student's gate opens the more, the surer the router is that the path suits it."""
    t = advantage / se.clamp(min=1e-12)
    return -t.sign() * (t.abs() - margin).clamp(min=0) / tau


def logistic_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Difference of two Gumbels = logistic noise: the binary case of Gumbel-max."""
    u = torch.rand(shape, generator=generator).clamp(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


@torch.no_grad()
def decide_gates(
    scores: torch.Tensor,
    noise: torch.Tensor,
    explore: torch.Tensor,
    *,
    students_per_path: int | None,
    min_students: int,
) -> torch.Tensor:
    """Hard 0/1 gates [B, S], for every routing mode. Paths marked `explore` [B] go to every
    student (the evidence). The others go, with a budget (`students_per_path` = k), to the k
    students with the highest scores + noise; without one (the paper's free subsets), to every
    student whose scores + noise > 0, topped up to `min_students` with the highest closed ones.
    `scores` are gate logits (learned routing) or zeros (random routing, and a router without
    evidence: at random)."""
    perturbed = scores + noise.to(scores.device)
    rank = perturbed.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = highest
    if students_per_path is not None:
        gates = rank < students_per_path
    else:
        gates = (perturbed > 0) | (rank < min_students)
    return (gates | explore.to(scores.device).unsqueeze(1)).to(scores.dtype)


def step_draws(
    seed: int, micro_step: int, n_paths: int, n_students: int, explore_share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The routing randomness of one micro-step, for the whole global batch: logistic noise
    [B, S] and the exploration mask [B] (each path goes to every student with probability
    `explore_share`). Identical on every rank (each rank takes its rows), and independent of
    where a resumed run restarted."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + 7919 * micro_step) % (2**63))
    noise = logistic_noise((n_paths, n_students), gen)
    return noise, torch.rand(n_paths, generator=gen) < explore_share


def entropy_regulariser(probs: torch.Tensor) -> torch.Tensor:
    """L_entropy of the mean gate probability (to be maximised): keeps the router away from
    "route nothing" and "route everything"."""
    abar = probs.mean().clamp(1e-6, 1 - 1e-6)
    return -(abar * abar.log() + (1 - abar) * (1 - abar).log())


def tau_at(step: int, total: int, start: float, end: float) -> float:
    """Exponential annealing of the gate temperature from `start` to `end`."""
    frac = min(1.0, step / max(1, total))
    return start * math.exp(frac * math.log(end / start))


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
