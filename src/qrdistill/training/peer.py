"""Cooperative peer teaching (METHOD.md Stage 4).

Alignment: students may have different tokenizers, so token t of one student is not token t of
another. The unit compared is the whole response: each student's last hidden states are averaged
over its response tokens only (prompt and padding excluded), then projected into a shared space:
    z~_s = LayerNorm(Proj_s(pooled_s))                            [B, S, dim]
    gamma_s = softmax_s(w_s . z~_s)          (competence, per path)
    z_ens = sum_s gamma_s z~_s
    L_mutual = sum_s mean_paths ||z~_s - z_ens||^2 / dim
The squared distance is averaged over paths and dimensions so lambda_mutual does not depend on
the batch size or `dim`.

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

import torch
import torch.nn.functional as F
from torch import nn

from qrdistill.training.data import IGNORE


def response_mask(labels: torch.Tensor) -> torch.Tensor:
    return labels != IGNORE


def pool_response(hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of hidden states over response tokens: [B, T, d] -> [B, d]. Prompt and padding carry
    label -100 and contribute nothing."""
    mask = response_mask(labels).unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class PeerTeaching(nn.Module):
    def __init__(self, hidden_sizes: list[int], dim: int, kind: str = "hidden"):
        super().__init__()
        self.kind = kind
        self.proj = nn.ModuleList(nn.Linear(d, dim, bias=False) for d in hidden_sizes)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.competence = nn.Parameter(torch.zeros(len(hidden_sizes), dim))

    def project(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        if self.kind == "logits":
            pooled = [p.detach() for p in pooled]
        return torch.stack([self.norm(proj(p.float())) for proj, p in zip(self.proj, pooled)], dim=1)

    def forward(self, pooled: list[torch.Tensor], loss_per_char: torch.Tensor,
                logits: list[torch.Tensor] | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """pooled: per student [B, d_s]; loss_per_char: [B, S] (detached); for kind "logits" also
        each student's logits [B, T, V] and the (shared) labels [B, T]."""
        z = self.project(pooled)  # [B, S, dim]
        comp_in = z if self.kind == "logits" else z.detach()
        comp_logits = (comp_in * self.competence).sum(-1)  # [B, S]
        gamma = comp_logits.softmax(dim=1)
        out = {"gamma": gamma.detach(),
               "competence": F.cross_entropy(comp_logits, loss_per_char.detach().argmin(dim=1))}
        if self.kind == "logits":
            out["mutual"] = logit_mutual_loss(logits, labels, gamma.detach())
            out["variance"] = z.new_zeros(())
            return out
        target = (gamma.detach().unsqueeze(-1) * z.detach()).sum(1, keepdim=True)
        out["mutual"] = ((z - target) ** 2).mean(-1).sum(1).mean(0)
        out["variance"] = variance_hinge(z)
        return out


def variance_hinge(z: torch.Tensor) -> torch.Tensor:
    """Mean over students and dims of relu(1 - std over paths); 0 for a batch of one path."""
    if z.shape[0] < 2:
        return z.new_zeros(())
    std = torch.sqrt(z.var(dim=0) + 1e-4)  # [S, dim]
    return F.relu(1.0 - std).mean()


def logit_mutual_loss(logits: list[torch.Tensor], labels: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """sum_s KL(p_ens || p_s) averaged over response positions; p_ens = sum_s gamma_s p_s, detached.

    Logits at position t predict token t+1, so response predictions sit where labels[:, 1:] is set.
    """
    mask = response_mask(labels[:, 1:]).float()  # [B, T-1]
    logps = [lg[:, :-1].float().log_softmax(-1) for lg in logits]
    with torch.no_grad():
        p_ens = sum(g[:, None, None] * lp.exp() for g, lp in zip(gamma.unbind(1), logps))
        log_ens = p_ens.clamp_min(1e-12).log()
    total = labels.new_zeros((), dtype=torch.float32)
    for lp in logps:
        kl = (p_ens * (log_ens - lp)).sum(-1)  # [B, T-1]
        total = total + (kl * mask).sum() / mask.sum().clamp(min=1.0)
    return total
