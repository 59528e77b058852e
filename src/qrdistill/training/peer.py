"""Cooperative peer teaching (docs/METHOD.md, "Peer teaching").

Alignment: students may have different tokenizers, so token t of one student is not token t of
another. The unit compared is the whole response: each student's last hidden states are averaged
over its response tokens only (prompt and padding excluded), then projected into a shared space:
    z~_s = LayerNorm(Proj_s(pooled_s))                            [B, S, dim]
    gamma_s = softmax_s(w_s . z~_s)          (competence, per path)
    z_ens = sum_s gamma_s z~_s
    L_mutual = sum_s mean_paths ||z~_s - z_ens||^2 / dim
The squared distance is averaged over paths and dimensions so lambda_mutual does not depend on
the batch size or `dim`.

Which rows: the step is sparse, so a student has representations only of the paths routed to it.
The ensemble target of a path is built from the students that computed it, and only paths that
at least two students computed carry the mutual and competence terms (a student alone on a path
has nobody to learn from). The variance hinge uses each student's own computed rows.

No collapse: the LayerNorm has no learnable scale, so every z~ has norm sqrt(dim) and the trivial
"project everything to zero" is impossible; a batch-variance hinge (VICReg style: each dimension
of z~_s should vary across paths with std >= 1) rules out the other trivial solution, "project
every path to the same vector".

What trains what:
- z_ens is a stop-gradient target: each student (and its projection) is pulled towards the
  ensemble; the ensemble is not pulled towards the students.
- the competence weights w_s are trained by `competence_loss`: a cross-entropy that makes gamma
  predict, per path, which student currently has the lowest distillation loss per character of
  the response (a per-character loss is comparable across tokenizers). Its input z~ is
  detached, so this loss trains only w_s. gamma enters z_ens detached, so the ensemble leans
  towards the student that handles the path best.
- kind "logits" (students sharing a tokenizer): L_mutual is the KL from the gamma-weighted
  ensemble of next-token distributions (detached) to each student, on response positions only.
  The projections then serve only the competence head, so there the competence loss trains
  them too (on detached student states).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qrdistill.training.data import IGNORE, per_path_sum

_MASKED = -1e9  # logit of a student that did not compute the path (softmax weight 0)


@dataclass
class RoutedRows:
    """What one student computed in a micro-batch: the rows routed to it and their outputs."""

    rows: torch.Tensor  # [n] positions in the micro-batch, ascending
    pooled: torch.Tensor  # [n, d_s] response-pooled last hidden states
    logits: torch.Tensor | None = None  # [n, T_s, V], kind "logits" only


def response_mask(labels: torch.Tensor) -> torch.Tensor:
    return labels != IGNORE


def pool_response(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    seq_idx: torch.Tensor | None = None,
    n_paths: int | None = None,
) -> torch.Tensor:
    """Mean of hidden states over each path's response tokens: [B, T, d] -> [paths, d] (a
    padding-free row: `seq_idx`, `n_paths`, see `per_path_sum`). Prompt and padding carry label
    -100 and contribute nothing."""
    mask = response_mask(labels).unsqueeze(-1).to(hidden.dtype)
    total = per_path_sum(hidden * mask, seq_idx, n_paths)
    return total / per_path_sum(mask, seq_idx, n_paths).clamp(min=1.0)


class PeerTeaching(nn.Module):
    def __init__(self, hidden_sizes: list[int], dim: int, kind: str = "hidden"):
        super().__init__()
        self.kind = kind
        self.dim = dim
        self.proj = nn.ModuleList(nn.Linear(d, dim, bias=False) for d in hidden_sizes)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.competence = nn.Parameter(torch.zeros(len(hidden_sizes), dim))

    def project(
        self, routed: list[RoutedRows | None], n_paths: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z~ [B, S, dim] (zeros where a student did not compute the path) and presence [B, S]."""
        device = self.competence.device
        present = torch.zeros(n_paths, len(self.proj), dtype=torch.bool, device=device)
        columns = []
        for s, part in enumerate(routed):
            if part is None:
                columns.append(torch.zeros(n_paths, self.dim, device=device))
                continue
            pooled = part.pooled.detach() if self.kind == "logits" else part.pooled
            # float32 whatever autocast made of the projection, so every column stacks alike
            z = self.norm(self.proj[s](pooled.float())).float()
            present[part.rows, s] = True
            columns.append(
                torch.zeros(n_paths, self.dim, device=device).index_copy(0, part.rows, z)
            )
        return torch.stack(columns, dim=1), present

    def competence_logits(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        comp_in = z if self.kind == "logits" else z.detach()
        return (comp_in * self.competence).sum(-1).masked_fill(~present, _MASKED)

    def gamma(self, routed: list[RoutedRows | None], n_paths: int) -> torch.Tensor:
        """Competence weights [B, S] over the students that computed each path."""
        z, present = self.project(routed, n_paths)
        return self.competence_logits(z, present).softmax(dim=1)

    def forward(
        self,
        routed: list[RoutedRows | None],
        n_paths: int,
        loss_per_char: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """routed: per student what it computed (None: nothing); loss_per_char: [B, S], NaN where
        not computed; for kind "logits" also the micro-batch's (shared) labels [B, T]."""
        z, present = self.project(routed, n_paths)
        variances = [
            variance_hinge(z[part.rows, s])
            for s, part in enumerate(routed)
            if part is not None and part.rows.numel() >= 2
        ]
        zero = z.new_zeros(())
        out = {
            "variance": torch.stack(variances).mean()
            if variances and self.kind == "hidden"
            else zero,
            "mutual": zero,
            "competence": zero,
        }
        shared = present.sum(1) >= 2
        if not shared.any():
            return out
        z_shared, mask = z[shared], present[shared]
        comp_logits = self.competence_logits(z_shared, mask)
        gamma = comp_logits.softmax(dim=1)
        best = loss_per_char[shared].masked_fill(~mask, float("inf")).argmin(dim=1)
        out["competence"] = F.cross_entropy(comp_logits, best.detach())
        if self.kind == "logits":
            out["mutual"] = logit_mutual_loss(
                *_aligned_logits(routed, shared, labels), gamma.detach(), mask
            )
        else:
            target = (gamma.detach().unsqueeze(-1) * z_shared.detach()).sum(1, keepdim=True)
            out["mutual"] = (((z_shared - target) ** 2).mean(-1) * mask).sum(1).mean(0)
        return out


def variance_hinge(z: torch.Tensor) -> torch.Tensor:
    """Mean over dims of relu(1 - std over paths) of one student's projections [n, dim]."""
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    return F.relu(1.0 - std).mean()


def _aligned_logits(
    routed: list[RoutedRows | None], shared: torch.Tensor, labels: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each student's logits on the shared rows, as [m, W, V] (zeros where it did not compute
    the row), and their labels [m, W]; W = the longest shared row (responses end each row)."""
    rows = shared.nonzero().squeeze(1)
    labels = labels[rows]
    filled = response_mask(labels)
    width = int((filled * torch.arange(1, labels.shape[1] + 1, device=labels.device)).max())
    aligned = []
    for part in routed:
        vocab = next(p.logits.shape[-1] for p in routed if p is not None)
        full = (
            part.logits.new_zeros((rows.numel(), width, vocab))
            if part is not None
            else labels.new_zeros((rows.numel(), width, vocab), dtype=torch.float32)
        )
        if part is not None:
            here = torch.isin(rows, part.rows)
            own = part.logits[torch.searchsorted(part.rows, rows[here]), :width]
            # A student whose rows are all shorter than W has fewer columns; past them its rows
            # hold no response position, so the zeros there are never read.
            full[here, : own.shape[1]] = own
        aligned.append(full)
    return aligned, labels[:, :width]


def logit_mutual_loss(
    logits: list[torch.Tensor],
    labels: torch.Tensor,
    gamma: torch.Tensor,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_s KL(p_ens || p_s) averaged over response positions of the rows student s computed;
    p_ens = sum_s gamma_s p_s (gamma is 0 for a student absent from a row), detached.

    Logits at position t predict token t+1, so response predictions sit where labels[:, 1:] is set.
    """
    if present is None:
        present = torch.ones(gamma.shape, dtype=torch.bool, device=gamma.device)
    mask = response_mask(labels[:, 1:]).float()  # [B, T-1]
    logps = [lg[:, :-1].float().log_softmax(-1) for lg in logits]
    with torch.no_grad():
        p_ens = sum(g[:, None, None] * lp.exp() for g, lp in zip(gamma.unbind(1), logps))
        log_ens = p_ens.clamp_min(1e-12).log()
    total = labels.new_zeros((), dtype=torch.float32)
    for lp, here in zip(logps, present.unbind(1)):
        kl = (p_ens * (log_ens - lp)).sum(-1)  # [B, T-1]
        weight = mask * here.float().unsqueeze(1)
        total = total + (kl * weight).sum() / weight.sum().clamp(min=1.0)
    return total
