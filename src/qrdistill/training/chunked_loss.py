"""Per-path losses straight from a student's last hidden states, without its [tokens, V] logits.

At the students' vocabularies (150k-260k tokens) the logits, not the model, set the memory of a
training step: the [tokens, V] rows, their float32 copy for the cross-entropy and its gradient
are each larger than all the model's activations. Here the output head is applied a chunk of
tokens at a time, and only to positions whose label is set (response tokens): prompt and padding
positions, most of a distillation row, never get logits. Each token's gradient with respect to
its hidden state is computed in the forward, while its chunk's logits exist, so the backward
needs no [*, V] tensor at all (a trainable head's weight gradient recomputes each chunk): no
pass holds more than one chunk's [chunk, V].

The losses are the ones `objective.per_path_loss` computes from the full logits, in the same
units (mean token cross-entropy of each path over its response tokens), and so are the gradients
of the hidden states and, when it is trainable, of the head's weight (tests/training/
test_chunked_loss.py). That holds only where the logits are `head(hidden)`, at most followed by
Gemma's `final_logit_softcapping`, which is elementwise and so chunks exactly; `chunkable_head`
decides it per model class and anything else keeps the full logits.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from qrdistill.training.data import IGNORE, per_path_sum

# Causal-LM classes whose logits are exactly `lm_head(last_hidden_state)` (read in the modeling
# code of the pinned transformers 5.23.0). Others may scale them (Granite divides by
# `logits_scaling`, Cohere multiplies by `logit_scale`), which chunking would silently drop.
PLAIN_HEADS = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "GemmaForCausalLM",
        "Phi3ForCausalLM",
        "Olmo2ForCausalLM",
        "SmolLM3ForCausalLM",
    }
)
# ... followed by tanh soft-capping at `config.final_logit_softcapping` when that is set.
SOFTCAPPED_HEADS = frozenset({"Gemma2ForCausalLM", "Gemma3ForCausalLM"})


class Head:
    """A student's output head as the chunked loss applies it, and what the head reads: the last
    hidden state of the student's decoder, kept by a forward hook on the decoder during
    `capture()`. Not transformers' `output_hidden_states`: its capturing hooks break a compiled
    student's graph (7 graph breaks in a tiny Llama, none with this hook)."""

    def __init__(
        self, linear: nn.Linear, softcap: float | None, dtype: torch.dtype, decoder: nn.Module
    ):
        self.linear = linear  # the module, not its weight: the weight is read at each step
        self.softcap = softcap  # Gemma's final_logit_softcapping
        self.dtype = dtype  # what the head's matmul runs in: the student's autocast type, if any
        self.decoder = decoder
        self._hooked = False
        self._capturing = False
        self._hidden: torch.Tensor | None = None

    def _keep(self, module, args, output) -> None:
        if self._capturing:
            self._hidden = output.last_hidden_state

    @contextmanager
    def capture(self):
        """Within it, the student's forward leaves its last hidden state [B, T, H] to `take`."""
        if not self._hooked:  # once: a compiled student keeps its graph across steps
            self.decoder.register_forward_hook(self._keep)
            self._hooked = True
        self._capturing = True
        try:
            yield self
        finally:
            self._capturing = False

    def take(self) -> torch.Tensor:
        """The captured last hidden state, handed over (not kept past the step)."""
        hidden, self._hidden = self._hidden, None
        return hidden


def chunkable_head(student: nn.Module) -> Head | str:
    """The head of `student` (a transformers causal LM, possibly wrapped by peft) if the chunked
    loss reproduces its logits exactly, else why not (the caller keeps the full logits)."""
    base = student.get_base_model() if hasattr(student, "get_base_model") else student
    name = type(base).__name__
    if name not in PLAIN_HEADS | SOFTCAPPED_HEADS:
        return f"{name} is not known to compute its logits as lm_head(hidden states)"
    linear = base.get_output_embeddings()
    # A LoRA-adapted or quantised head is another module type, with other arithmetic.
    if type(linear) is not nn.Linear or linear.bias is not None:
        return f"{name}'s output head is a {type(linear).__name__}, not a plain bias-free Linear"
    softcap = base.config.final_logit_softcapping if name in SOFTCAPPED_HEADS else None
    # students.autocast_forward marks a half-precision student; under autocast the head's matmul
    # runs in that type, and so does ours.
    dtype = getattr(student.forward, "qrdistill_autocast", None) or linear.weight.dtype
    # These classes' head reads exactly their decoder's last_hidden_state.
    return Head(linear, softcap, dtype, base.get_decoder())


def _chunk_logits(
    hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """float32 logits of a chunk, computed as the model computes them (matmul in the head's type,
    then soft-capping in that type), and the tanh of the soft-capping, which its backward needs."""
    logits = hidden @ weight.T
    if softcap is None:
        return logits.float(), None
    capped = torch.tanh(logits / softcap)
    return (capped * softcap).float(), capped


def _grad_raw_logits(
    logits: torch.Tensor,
    lse: torch.Tensor,
    targets: torch.Tensor,
    capped: torch.Tensor | None,
    dtype: torch.dtype,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """d nll / d (head output) of each token of a chunk, in the head's type: softmax - onehot
    (in place on the float32 `logits`), times each token's `scale` if given (before the cast, as
    autograd scales the full logits' gradient), then through the soft-capping
    (d softcap * tanh(x / softcap) / dx = 1 - tanh^2)."""
    grad = logits.sub_(lse[:, None]).exp_()
    grad[torch.arange(grad.shape[0], device=grad.device), targets] -= 1
    if scale is not None:
        grad.mul_(scale[:, None])
    grad = grad.to(dtype)
    return grad if capped is None else grad * (1 - capped * capped)


class _ChunkedTokenNLL(torch.autograd.Function):
    """-log softmax(head(h))[target] per token, [M, H] -> [M] float32, `chunk` tokens at a time;
    no [M, V] tensor is ever held.

    A token's loss depends on its own hidden state only, so its gradient there is one vector
    (d nll_t / d h_t, [H]) that the forward computes while the chunk's logits exist; the backward
    only scales it by each token's incoming gradient, with no second pass over the vocabulary.
    The head weight's gradient sums over tokens weighted by those incoming gradients, so where
    the head is trainable the backward recomputes each chunk's logits for it."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk, softcap, dtype):
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        nll = torch.empty(targets.shape, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(nll)
        grad_unit = torch.empty_like(hidden, dtype=torch.float32) if need_hidden else None
        # Explicit types: an enclosing autocast (accelerate's) must not change the head's.
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            for start in range(0, targets.numel(), chunk):
                part = slice(start, start + chunk)
                logits, capped = _chunk_logits(hidden[part].to(dtype), w, softcap)
                lse[part] = torch.logsumexp(logits, dim=-1)
                nll[part] = lse[part] - logits.gather(1, targets[part, None]).squeeze(1)
                if need_hidden:
                    grad = _grad_raw_logits(logits, lse[part], targets[part], capped, dtype)
                    grad_unit[part] = grad @ w
        ctx.save_for_backward(grad_unit, hidden if need_weight else None, weight, targets, lse)
        ctx.chunk, ctx.softcap, ctx.dtype, ctx.hidden_dtype = chunk, softcap, dtype, hidden.dtype
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        grad_unit, hidden, weight, targets, lse = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        grad_hidden = grad_weight = None
        if need_hidden:
            grad_hidden = (grad_unit * grad_nll[:, None]).to(ctx.hidden_dtype)
        if need_weight:
            # Summed over chunks in float32 whatever the head's type, then cast once.
            grad_weight = torch.zeros_like(weight, dtype=torch.float32)
            with torch.autocast(hidden.device.type, enabled=False):
                w = weight.to(ctx.dtype)
                for start in range(0, targets.numel(), ctx.chunk):
                    part = slice(start, start + ctx.chunk)
                    h = hidden[part].to(ctx.dtype)
                    logits, capped = _chunk_logits(h, w, ctx.softcap)
                    grad = _grad_raw_logits(
                        logits, lse[part], targets[part], capped, ctx.dtype, grad_nll[part]
                    )
                    grad_weight += (grad.T @ h).float()
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None


def per_path_mean(
    token_losses: torch.Tensor,
    targets: torch.Tensor,
    seq_idx: torch.Tensor | None = None,
    n_paths: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each path's mean of its token losses [B, T-1] (0 where the target is ignored) over its
    response tokens, and that count: the grouping both loss paths share. A target belongs to its
    own path (a path's first label is -100 in either layout), so `seq_idx` is shifted with it."""
    target_path = None if seq_idx is None else seq_idx[:, 1:]
    count = per_path_sum((targets != IGNORE).long(), target_path, n_paths)
    return per_path_sum(token_losses, target_path, n_paths) / count.clamp(min=1), count


def chunked_per_path_loss(
    hidden: torch.Tensor,
    head: Head,
    labels: torch.Tensor,
    seq_idx: torch.Tensor | None = None,
    n_paths: int | None = None,
    chunk_tokens: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`objective.per_path_loss` of the logits `head` makes of `hidden` [B, T, H], computed
    without them: [paths] mean response-token cross-entropy, [paths] response-token counts."""
    targets = labels[:, 1:]
    kept = targets != IGNORE  # position t predicts label t + 1; only response targets count
    nll = _ChunkedTokenNLL.apply(
        hidden[:, :-1][kept],
        head.linear.weight,
        targets[kept],
        chunk_tokens,
        head.softcap,
        head.dtype,
    )
    token_losses = nll.new_zeros(targets.shape).masked_scatter(kept, nll)
    return per_path_mean(token_losses, targets, seq_idx, n_paths)
