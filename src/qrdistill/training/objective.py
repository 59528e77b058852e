"""The full QR-Distill objective for one micro-batch, as one module, so one DDP/FSDP wrapper covers
every trainable part (docs/METHOD.md, "Objective"):

    L = distill + router - lambda_entropy * entropy
        + lambda_mutual * (mutual + lambda_variance * variance) + lambda_competence * competence

distill    sum over trainable students of their losses on the paths routed to them, over the
           batch's paths: a path weighs 1/B whatever the routing mode
router     the router's fit on this step's evidence, before adding it (router.py; no gradient)
entropy    the entropy of the mean gate probability (router.py; logged, no gradient)
mutual, variance, competence   peer teaching (peer.py)

The step is sparse: gates are decided first, here for every routing mode (router.decide_gates), then each student runs forward (and, through the
loss, backward) on its routed paths only: re-batched without the other rows' padding, or with
`padding_free` the routed paths' segments of the one padding-free row (data.collate_padding_free).
A pair with gate 0 costs that student nothing and gives it exactly zero gradient. Either layout
gives the same per-path losses and pooled states: only how the paths sit in memory differs.
A student's per-path losses come from its last hidden states, its head applied a chunk of
response tokens at a time (chunked_loss.py, `loss_chunk_tokens`), wherever that reproduces the
full logits' losses; elsewhere from the full logits (`per_path_loss`).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qrdistill.training.chunked_loss import (
    Head,
    chunkable_head,
    chunked_per_path_loss,
    per_path_mean,
)
from qrdistill.training.config import TrainConfig
from qrdistill.training.data import IGNORE, unflatten
from qrdistill.training.peer import PeerTeaching, RoutedRows, pool_response
from qrdistill.training.router import (
    Router,
    decide_gates,
    entropy_regulariser,
    gate_scores,
    row_centred,
)

TERMS = ("distill", "router", "entropy", "mutual", "variance", "competence")


def term_weights(cfg: TrainConfig) -> dict[str, float]:
    """The coefficient of each named term in the total loss: the one place the sum is spelled out."""
    return {
        "distill": 1.0,
        "router": 1.0,
        "entropy": -cfg.lambda_entropy,
        "mutual": cfg.lambda_mutual,
        "variance": cfg.lambda_mutual * cfg.peer.lambda_variance,
        "competence": cfg.peer.lambda_competence,
    }


@dataclass
class StepOutput:
    loss: torch.Tensor  # the total, with gradient
    terms: dict[str, torch.Tensor]  # each term of TERMS, detached; 0 when inactive
    per_path: (
        torch.Tensor
    )  # [B, S] loss of each computed (path, student) pair; NaN where not computed
    gates: torch.Tensor  # [B, S] 0/1: which student computed which path
    # [B, S] the router's gate probabilities sigmoid(l) (1/2 for random routing; the gates
    # themselves for routing `all` and imposed gates)
    probs: torch.Tensor
    # [B, S] the shadow router's (paths and losses paired at random), as probs otherwise
    shadow_probs: torch.Tensor
    tokens: torch.Tensor  # [S] real tokens through forward and backward (trainable students)
    forward_only_tokens: (
        torch.Tensor
    )  # [S] real tokens through a forward pass only (frozen students)


def per_path_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    seq_idx: torch.Tensor | None = None,
    n_paths: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token cross-entropy of each path over its response tokens (reduction='none' per path),
    and the number of response tokens. [B, T, V], [B, T] -> [paths], [paths]; a padding-free row
    holds several paths (`seq_idx`, `n_paths`: see data.per_path_sum)."""
    targets = labels[:, 1:]
    # Flat [tokens, V] rows: the class dimension last, cross_entropy's fast layout (a [B, V, T]
    # view of the logits makes it take the spatial kernels, several times slower on a GPU).
    tokens = F.cross_entropy(
        logits[:, :-1].float().flatten(0, 1),
        targets.flatten(),
        ignore_index=IGNORE,
        reduction="none",
    ).view(targets.shape)  # [B, T-1], 0 where ignored
    return per_path_mean(tokens, targets, seq_idx, n_paths)


def path_losses(
    logits: torch.Tensor | None,
    hidden: torch.Tensor | None,
    head: Head | None,
    sub: dict[str, torch.Tensor],
    n_paths: int,
    chunk_tokens: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-path losses and response-token counts of one student on its routed rows `sub`: from
    its last hidden states a chunk at a time where it has a chunkable `head` (the student then
    computed no logits), else from its full logits. The same values either way."""
    labels, seq_idx = sub["labels"], sub.get("seq_idx")
    if head is None:
        return per_path_loss(logits, labels, seq_idx, n_paths)
    return chunked_per_path_loss(hidden, head, labels, seq_idx, n_paths, chunk_tokens)


def loss_head(student: nn.Module) -> Head | None:
    """The student's head for the chunked loss, or None (with a warning saying why) where
    chunking would not reproduce its logits exactly."""
    head = chunkable_head(student)
    if isinstance(head, str):
        warnings.warn(f"loss from the full logits: {head}", stacklevel=3)
        return None
    return head


def select_rows(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The routed paths of a batch: of right-padded rows, those rows trimmed to their own longest
    row; of a padding-free row, their segments, still one row, `seq_idx` renumbered 0..n-1."""
    if "seq_idx" in batch:
        keep = torch.isin(batch["seq_idx"][0], rows)
        sub = {k: v[:, keep] for k, v in batch.items()}
        sub["seq_idx"] = torch.searchsorted(rows, sub["seq_idx"])  # rows are ascending
        return sub
    sub = {k: v.index_select(0, rows) for k, v in batch.items()}
    width = int(sub["attention_mask"].sum(1).max())
    return {k: v[:, :width] for k, v in sub.items()}


def real_tokens(batch: dict[str, torch.Tensor]) -> torch.Tensor | int:
    """Tokens that are not padding: a padding-free batch has none."""
    return (
        batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel()
    )


class QRDistillObjective(nn.Module):
    def __init__(
        self,
        students: list[nn.Module],
        cfg: TrainConfig,
        route_embeddings: torch.Tensor | None,
        *,
        every_rank_runs_every_student: bool = False,
    ):
        super().__init__()
        self.cfg = cfg
        # FSDP / DeepSpeed ZeRO-3 gather a module's shards inside its forward and backward, which
        # every rank must join: there a student with no routed row runs one row at weight 0.
        self.every_rank_runs_every_student = every_rank_runs_every_student
        self.weights = term_weights(cfg)
        self.students = nn.ModuleList(students)
        self.frozen = [sc.frozen for sc in cfg.students]
        self.router = self.shadow = None
        if cfg.effective_routing_mode == "learned":
            routing = cfg.routing

            def router() -> Router:
                return Router(
                    route_embeddings,
                    len(students),
                    components=routing.components,
                    prior=routing.prior,
                    forget=routing.forget,
                )

            # The shadow gets the same evidence with paths and losses paired at random: what this
            # router makes of no signal, at these settings and counts (routing.jsonl's null band).
            self.router, self.shadow = router(), router()
        self.peer = None
        if cfg.peer_active:
            sizes = [s.config.get_text_config().hidden_size for s in students]
            self.peer = PeerTeaching(sizes, cfg.peer.dim, cfg.peer.kind)
        # Per student, the head the chunked loss applies (chunked_loss.py), or None: the full
        # logits. Those stay where chunking is off, where peer teaching compares logits (its KL
        # needs every student's full next-token distribution at every response position, and
        # the logits it needs are then computed anyway), and in sharded runs (FSDP/ZeRO-3 gather
        # the head's weight only inside the student's own forward and backward).
        full_logits = (
            cfg.loss_chunk_tokens is None
            or every_rank_runs_every_student
            or (self.peer is not None and self.peer.kind == "logits")
        )
        self.heads = [None if full_logits else loss_head(s) for s in students]

    def train(self, mode: bool = True) -> QRDistillObjective:
        # A frozen student is a fixed peer: no LoRA/attention dropout noise in what it provides.
        super().train(mode)
        for student, frozen in zip(self.students, self.frozen):
            if frozen:
                student.eval()
        return self

    def _run(
        self, s: int, sub: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Student s's forward on its routed rows: (logits, last hidden states). With a chunked
        head there are no logits (an empty `logits_to_keep` applies the head to no position) and
        the hidden states come from the head's capture; else the logits, and the hidden states
        where peer teaching reads them."""
        student, head = self.students[s], self.heads[s]
        # No cache: with one, transformers ignores padding-free position ids (sdpa/eager).
        kwargs = {k: sub[k] for k in ("input_ids", "attention_mask", "position_ids") if k in sub}
        with torch.no_grad() if self.frozen[s] else nullcontext():
            if head is not None:
                no_logits = sub["input_ids"].new_empty(0)
                with head.capture():
                    student(**kwargs, logits_to_keep=no_logits, use_cache=False)
                return None, head.take()
            out = student(**kwargs, output_hidden_states=self.peer is not None, use_cache=False)
        return out.logits, out.hidden_states[-1] if self.peer is not None else None

    def _peer_rows(
        self,
        rows: torch.Tensor,
        logits: torch.Tensor | None,
        hidden: torch.Tensor,
        sub: dict[str, torch.Tensor],
    ) -> RoutedRows:
        """What peer teaching reads from one student: response-pooled states per path and, for
        kind logits, the logits as right-padded rows (position t of a path is compared across
        students)."""
        seq_idx, n = sub.get("seq_idx"), rows.numel()
        if self.peer.kind != "logits":
            logits = None
        elif seq_idx is not None:
            logits = unflatten(logits, sub, n, 0.0)
        return RoutedRows(rows, pool_response(hidden, sub["labels"], seq_idx, n), logits)

    def forward(
        self,
        inputs: list[dict[str, torch.Tensor]],
        *,
        chars: torch.Tensor,
        embeddings: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        explore: torch.Tensor | None = None,
        tau: float = 1.0,
        fixed_gates: torch.Tensor | None = None,
    ) -> StepOutput:
        """inputs: per student the collated batch of the same B paths (data.collate: right-padded
        or padding-free); chars: [B] response lengths in characters. The gates are decided here
        for every routing mode, from the routing draws (noise [B, S], explore [B]: router.step_draws)
        and, in learned mode, the router's evidence on the paths' embeddings; `fixed_gates`
        [B, S] imposes them instead (tests, and callers that route by hand)."""
        n_paths, n_students = chars.shape[0], len(self.students)
        device = inputs[0]["input_ids"].device
        routing, mode = self.cfg.routing, self.cfg.effective_routing_mode
        if fixed_gates is not None:
            gates = probs = shadow_probs = fixed_gates.to(device).float()
        elif mode == "all":
            gates = probs = shadow_probs = torch.ones(n_paths, n_students, device=device)
        else:
            scores = torch.zeros(n_paths, n_students, device=device)  # random: no preference
            shadow = scores
            if self.router is not None:
                scores = gate_scores(*self.router(embeddings), routing.margin, tau)
                shadow = gate_scores(*self.shadow(embeddings), routing.margin, tau)
            gates = decide_gates(
                scores,
                noise,
                explore,
                students_per_path=routing.students_per_path,
                min_students=routing.min_students_per_path,
            )
            probs, shadow_probs = torch.sigmoid(scores), torch.sigmoid(shadow)

        zero = torch.zeros((), device=device)
        terms = dict.fromkeys(TERMS, zero)
        per_path = torch.full((n_paths, n_students), float("nan"), device=device)
        counts = torch.zeros((n_paths, n_students), device=device)
        tokens = torch.zeros(n_students, dtype=torch.long, device=device)
        forward_only = torch.zeros(n_students, dtype=torch.long, device=device)
        routed: list[RoutedRows | None] = []
        for s, batch in enumerate(inputs):
            rows = gates[:, s].nonzero().squeeze(1)
            idle = rows.numel() == 0
            if idle and not self.every_rank_runs_every_student:
                routed.append(None)
                continue
            if idle:
                rows = torch.zeros(1, dtype=torch.long, device=device)
            sub = select_rows(batch, rows)
            n, frozen = rows.numel(), self.frozen[s]
            logits, hidden = self._run(s, sub)
            loss, count = path_losses(
                logits, hidden, self.heads[s], sub, n, self.cfg.loss_chunk_tokens
            )
            if idle:  # joins the collectives, gives exactly zero gradient, counts as nothing
                if not frozen:
                    terms["distill"] = terms["distill"] + 0.0 * loss.sum()
                routed.append(None)
                continue
            if not frozen:  # a path weighs 1/B: no routing mode changes the step size
                terms["distill"] = terms["distill"] + loss.sum() / n_paths
            per_path[rows, s] = loss.detach()
            counts[rows, s] = count.float()
            (forward_only if frozen else tokens)[s] = real_tokens(sub)
            routed.append(None if self.peer is None else self._peer_rows(rows, logits, hidden, sub))

        # Per-character loss: comparable across tokenizers (the router's and competence's unit).
        per_char = per_path * counts / chars.to(device).unsqueeze(1).clamp(min=1)
        if self.router is not None and fixed_gates is None:  # imposed gates teach it nothing
            centred = row_centred(per_char)
            terms["router"] = self.router.observe(embeddings, centred)
            # A permutation of the rows drawn from the step's noise: the same on every rank.
            self.shadow.observe(embeddings[noise[:, 0].argsort().to(device)], centred)
            terms["entropy"] = entropy_regulariser(probs)
        if self.peer is not None:
            labels = None
            if self.peer.kind == "logits":
                labels = inputs[0]["labels"]
                if "seq_idx" in inputs[0]:
                    labels = unflatten(labels, inputs[0], n_paths, IGNORE)
            terms.update(self.peer(routed, n_paths, per_char, labels=labels))

        loss = sum(self.weights[k] * terms[k] for k in TERMS)
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            per_path=per_path,
            gates=gates.detach(),
            probs=probs.detach(),
            shadow_probs=shadow_probs.detach(),
            tokens=tokens,
            forward_only_tokens=forward_only,
        )
