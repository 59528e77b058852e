"""The training loop's state, as plain dataclasses that a checkpoint saves as JSON.

- `Progress`      where training is (epoch, window, optimizer step), the tokens trained on and
                  the seconds each epoch's optimizer steps took;
- `LogWindow`     sums over the micro-steps since the last metrics.jsonl row;
- `RoutingTally`  routed counts per (style, student) over the current epoch, for routing.jsonl.

`to_json` / `from_json` give the dicts a checkpoint's progress.json holds ("position", "log" and
"routing"), tensors as nested lists, so a checkpoint written before these classes existed resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


class _JSONState:
    def to_json(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict):
        return cls(
            **{
                k: torch.tensor(v) if isinstance(v, list) and k in cls._TENSORS else v
                for k, v in data.items()
            }
        )

    _TENSORS: tuple[str, ...] = ()


def _plain(value):
    return value.tolist() if torch.is_tensor(value) else value


@dataclass
class Progress(_JSONState):
    epoch: int = 0
    window: int = 0  # gradient-accumulation windows finished in this epoch
    step: int = 0  # optimizer steps finished
    tokens: list[int] = field(default_factory=list)  # per student: through forward and backward
    forward_only_tokens: list[int] = field(
        default_factory=list
    )  # per student: forward only (frozen)
    # Wall-clock seconds of the optimizer steps (forward, backward, update; not logging or
    # checkpoint writes): so far in the current epoch, and per finished epoch. Kept in the
    # checkpoint, so an epoch interrupted and resumed counts only the steps it ran.
    epoch_seconds: float = 0.0
    epoch_times: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, n_students: int) -> Progress:
        return cls(tokens=[0] * n_students, forward_only_tokens=[0] * n_students)

    def count_tokens(self, tokens: torch.Tensor) -> None:
        """Add a step's [2, S] counts: tokens trained on, then forward-only tokens."""
        self.tokens = [t + int(x) for t, x in zip(self.tokens, tokens[0])]
        self.forward_only_tokens = [t + int(x) for t, x in zip(self.forward_only_tokens, tokens[1])]


@dataclass
class LogWindow(_JSONState):
    n: int  # micro-steps summed
    scalars: torch.Tensor  # [1 + len(TERMS)]: the total, then each term (objective.TERMS)
    routed_loss: torch.Tensor  # [S] sum of the losses of the paths each student computed
    routed: torch.Tensor  # [S] paths each student computed
    paths: int  # paths seen

    _TENSORS = ("scalars", "routed_loss", "routed")

    @classmethod
    def empty(cls, n_students: int, n_scalars: int) -> LogWindow:
        return cls(0, torch.zeros(n_scalars), torch.zeros(n_students), torch.zeros(n_students), 0)

    def add(self, scalars: torch.Tensor, per_path: torch.Tensor, gates: torch.Tensor) -> None:
        """One micro-step: scalars [ranks, 1 + terms], per-path losses and gates [B, S]."""
        computed = gates > 0
        self.n += 1
        self.scalars += scalars.mean(0)
        self.routed_loss += torch.where(computed, per_path, torch.zeros_like(per_path)).sum(0)
        self.routed += gates.sum(0)
        self.paths += len(per_path)


@dataclass
class RoutingTally(_JSONState):
    routed: torch.Tensor  # [styles, S] paths of each style routed to each student
    prob: torch.Tensor  # [styles, S] sum of their gate probabilities
    paths: torch.Tensor  # [styles] paths of each style
    unrouted: int  # paths routed to nobody
    everyone: int  # paths routed to every student
    shared: int = 0  # paths routed to at least 2 students: the router's evidence
    shadow: torch.Tensor | None = None  # [styles, S] the shadow router's gate probabilities
    # [2, styles, S] and [2, styles]: gate probabilities and path counts in each half of the
    # questions, so a preference can be checked to hold in both halves.
    half_prob: torch.Tensor | None = None
    half_paths: torch.Tensor | None = None

    _TENSORS = ("routed", "prob", "paths", "shadow", "half_prob", "half_paths")

    @classmethod
    def empty(cls, n_styles: int, n_students: int) -> RoutingTally:
        shape = (n_styles, n_students)
        return cls(
            torch.zeros(shape),
            torch.zeros(shape),
            torch.zeros(n_styles),
            0,
            0,
            0,
            torch.zeros(shape),
            torch.zeros((2, *shape)),
            torch.zeros(2, n_styles),
        )

    def add(
        self,
        style: torch.Tensor,
        half: torch.Tensor,
        gates: torch.Tensor,
        probs: torch.Tensor,
        shadow: torch.Tensor,
    ) -> None:
        """One micro-step: each path's style index and half (0/1) [B], its gates, its gate
        probabilities and the shadow router's [B, S]."""
        if self.shadow is None:  # a checkpoint from before the shadow router
            self.shadow = torch.zeros_like(self.prob)
        if self.half_prob is None:  # a checkpoint from before the split halves
            self.half_prob = torch.zeros((2, *self.prob.shape))
            self.half_paths = torch.zeros(2, len(self.paths))
        cell = half * len(self.paths) + style  # flat index into [2, styles]
        self.half_prob.view(-1, self.prob.shape[1]).index_add_(0, cell, probs)
        self.half_paths.view(-1).index_add_(0, cell, torch.ones(len(style)))
        self.routed.index_add_(0, style, gates)
        self.prob.index_add_(0, style, probs)
        self.shadow.index_add_(0, style, shadow)
        self.paths.index_add_(0, style, torch.ones(len(style)))
        routes = gates.sum(1)
        self.unrouted += int((routes == 0).sum())
        self.everyone += int((routes == gates.shape[1]).sum())
        self.shared += int((routes >= 2).sum())
