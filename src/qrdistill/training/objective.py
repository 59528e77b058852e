"""The full QR-Distill objective as one module, so one DDP/FSDP wrapper covers every trainable part:
    L = sum_s L_distill(s) - lambda_entropy * L_entropy + lambda_mutual * L_mutual (+ the terms
        that keep peer teaching well posed: variance hinge, competence loss; see peer.py)
Routing is in router.py, peer teaching in peer.py; this file only wires them to the students.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qrdistill.training.config import TrainConfig
from qrdistill.training.data import IGNORE
from qrdistill.training.peer import PeerTeaching, pool_response
from qrdistill.training.router import Router, entropy_regulariser, gated_distill_loss, straight_through_gates


def per_path_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token cross-entropy of each path over its response tokens (reduction='none' per path),
    and the number of response tokens. [B, T, V], [B, T] -> [B], [B]."""
    targets = labels[:, 1:]
    tokens = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE,
                             reduction="none")  # [B, T-1], 0 where ignored
    count = (targets != IGNORE).sum(1)
    return tokens.sum(1) / count.clamp(min=1), count


class QRDistillObjective(nn.Module):
    def __init__(self, students: list[nn.Module], cfg: TrainConfig, embed_dim: int | None):
        super().__init__()
        self.cfg = cfg
        self.students = nn.ModuleList(students)
        self.frozen = [sc.frozen for sc in cfg.students]
        self.mode = cfg.effective_routing_mode
        n = len(students)
        self.router = Router(embed_dim, n, cfg.routing.hidden) if self.mode == "learned" else None
        self.peer = None
        if cfg.peer_active:
            sizes = [s.config.get_text_config().hidden_size for s in students]
            self.peer = PeerTeaching(sizes, cfg.peer.dim, cfg.peer.kind)

    def train(self, mode: bool = True) -> QRDistillObjective:
        # A frozen student is a fixed peer: no LoRA/attention dropout noise in what it provides.
        super().train(mode)
        for student, frozen in zip(self.students, self.frozen):
            if frozen:
                student.eval()
        return self

    def forward(self, inputs: list[dict[str, torch.Tensor]], *, chars: torch.Tensor,
                embeddings: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                tau: float = 1.0, fixed_gates: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """inputs: per student {input_ids, attention_mask, labels} for the same paths;
        chars: [B] response length in characters; gates come from the router (embeddings, noise,
        tau) or are given (`fixed_gates`, modes all/random)."""
        want_hidden = self.peer is not None and self.peer.kind == "hidden"
        losses, counts, pooled, logits = [], [], [], []
        for student, batch in zip(self.students, inputs):
            out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          output_hidden_states=self.peer is not None)
            loss, count = per_path_loss(out.logits, batch["labels"])
            losses.append(loss)
            counts.append(count)
            if self.peer is not None:
                pooled.append(pool_response(out.hidden_states[-1], batch["labels"]))
                if not want_hidden:
                    logits.append(out.logits)
        per_path = torch.stack(losses, dim=1)  # [B, S]
        result: dict[str, torch.Tensor] = {}
        if self.router is not None:
            router_logits = self.router(embeddings)
            probs = torch.sigmoid(router_logits)
            gates = straight_through_gates(router_logits, noise, tau)
            distill = gated_distill_loss(per_path, gates, self.router.baseline)
            entropy = entropy_regulariser(probs)
            total = distill.sum() - self.cfg.lambda_entropy * entropy
            result.update(probs=probs.detach(), entropy=entropy.detach())
        else:
            gates = fixed_gates.to(per_path.dtype)
            total = gated_distill_loss(per_path, gates, None).sum()
        if self.peer is not None:
            per_char = per_path.detach() * torch.stack(counts, 1) / chars.unsqueeze(1).clamp(min=1)
            peer = self.peer(pooled, per_char, logits=logits or None, labels=_shared_labels(inputs, want_hidden))
            total = (total + self.cfg.lambda_mutual * (peer["mutual"] + self.cfg.peer.lambda_variance * peer["variance"])
                     + self.cfg.peer.lambda_competence * peer["competence"])
            result.update({k: v.detach() for k, v in peer.items()})
        result.update(loss=total, per_path=per_path.detach(), gates=gates.detach(),
                      tokens=torch.stack(counts, 1))
        return result


def _shared_labels(inputs: list[dict[str, torch.Tensor]], hidden: bool) -> torch.Tensor | None:
    """Token-level (logits) peer teaching compares position t across students, which is only
    meaningful when they tokenised every path identically; refuse otherwise."""
    if hidden:
        return None
    first = inputs[0]["input_ids"]
    for batch in inputs[1:]:
        if batch["input_ids"].shape != first.shape or not torch.equal(batch["input_ids"], first):
            raise ValueError("peer.kind 'logits' needs students that share a tokenizer (identical "
                             "token ids for every path); use peer.kind 'hidden' for different tokenizers")
    return inputs[0]["labels"]
