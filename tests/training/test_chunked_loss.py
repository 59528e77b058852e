"""The chunked per-path loss (training/chunked_loss.py) against the full-logits one
(objective.per_path_loss): the same per-path losses and gradients (float32 within 1e-5, bf16
within a stated tolerance), on tiny Llama-, Qwen2- and Gemma-3-like students, right-padded and
padding-free; the largest tensor a step allocates, counted op by op; and where it falls back to
the full logits."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from qrdistill.training.chunked_loss import Head, chunkable_head, chunked_per_path_loss
from qrdistill.training.data import IGNORE, Encoded, build_data, collate
from qrdistill.training.objective import QRDistillObjective, per_path_loss
from qrdistill.training.students import load_student

PATHS = [0, 4, 5, 7, 11]  # all three styles, lengths differ by up to 2x
GATES = [[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]  # sparse: each computes a subset
CHARS = torch.tensor([60.0, 80, 70, 90, 50])


def _random_batch(seed: int, vocab: int, padding_free: bool) -> dict[str, torch.Tensor]:
    """Four paths of different lengths, each a prompt (label -100) then a response."""
    gen = torch.Generator().manual_seed(seed)
    encoded = []
    for length, prompt in [(9, 4), (14, 7), (6, 3), (11, 5)]:
        ids = torch.randint(0, vocab, (length,), generator=gen).tolist()
        encoded.append(Encoded(ids, [IGNORE] * prompt + ids[prompt:]))
    return collate(encoded, pad_id=0, padding_free=padding_free)


def _full_logits(hidden: torch.Tensor, weight: torch.Tensor, softcap: float | None):
    """The logits as Gemma's causal LM computes them (the others: softcap None)."""
    logits = hidden @ weight.T
    return logits if softcap is None else torch.tanh(logits / softcap) * softcap


@pytest.mark.parametrize("softcap", [None, 0.5])
@pytest.mark.parametrize("padding_free", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunked_loss_gives_the_full_logits_losses_and_gradients(softcap, padding_free, chunk):
    vocab, size = 50, 16
    batch = _random_batch(0, vocab, padding_free)
    seq_idx, n = batch.get("seq_idx"), 4
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(*batch["input_ids"].shape, size, generator=gen, requires_grad=True)
    linear = nn.Linear(size, vocab, bias=False)  # trainable here: its gradient is checked too
    with torch.no_grad():
        linear.weight.copy_(torch.randn(vocab, size, generator=gen) * 0.5)
    path_weights = torch.rand(n, generator=gen)  # paths weigh differently in the backward

    def run(chunked: bool):
        hidden.grad = linear.weight.grad = None
        if chunked:
            head = Head(linear, softcap, torch.float32, decoder=nn.Identity())  # not run here
            loss, count = chunked_per_path_loss(hidden, head, batch["labels"], seq_idx, n, chunk)
        else:
            logits = _full_logits(hidden, linear.weight, softcap)
            loss, count = per_path_loss(logits, batch["labels"], seq_idx, n)
        (loss * path_weights).sum().backward()
        return loss.detach(), count, hidden.grad.clone(), linear.weight.grad.clone()

    full, chunked = run(False), run(True)
    assert torch.equal(full[1], chunked[1])  # response-token counts
    assert full[1].tolist() == [5, 7, 3, 6]
    assert full[0].min() > 1.0  # real losses
    for a, b in zip(full[:1] + full[2:], chunked[:1] + chunked[2:]):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    # Prompt and padding positions get no gradient (they never get logits).
    kept = torch.zeros(batch["labels"].shape, dtype=torch.bool)
    kept[:, :-1] = batch["labels"][:, 1:] != IGNORE
    assert (chunked[2][~kept] == 0).all() and (chunked[2][kept].abs().sum(-1) > 0).all()
    if softcap is not None:  # the cap does change the losses: it is applied, not ignored
        plain = per_path_loss(
            hidden.detach() @ linear.weight.detach().T, batch["labels"], seq_idx, n
        )
        assert (plain[0] - full[0]).abs().min() > 1e-2


@pytest.fixture(scope="module")
def gemma_student(tmp_path_factory):
    from tiny_models import make_tiny_student

    return make_tiny_student(
        tmp_path_factory.mktemp("gemma") / "student_g", arch="gemma3", vocab_size=400, seed=2
    )


def _student(name: str, folder, **switches) -> dict:
    return {
        "name": name,
        "model": str(folder),
        "lr": 1e-3,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        **switches,
    }


def _objectives(cfg, **full_overrides):
    """The same loaded students under two objectives: the chunked loss (cfg) and the full logits
    (loss_chunk_tokens null), with the same peer modules."""
    torch.manual_seed(0)
    loaded = [load_student(s) for s in cfg.students]
    students = [m for m, _ in loaded]
    for student in students:  # LoRA's B starts at 0, so A's gradient would be 0 in both
        for name, p in student.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
    full_cfg = cfg.model_copy(update={"loss_chunk_tokens": None, **full_overrides})
    chunked = QRDistillObjective(students, cfg, torch.randn(32, 8))
    full = QRDistillObjective(students, full_cfg, torch.randn(32, 8))
    if chunked.peer is not None:
        for p in chunked.peer.parameters():  # zero-initialised competence weights: give a slope
            torch.nn.init.normal_(p, std=0.5)
        full.peer.load_state_dict(chunked.peer.state_dict())
    toks = {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)}
    return chunked, full, toks


def _step(model, inputs, gates):
    model.zero_grad()
    out = model(inputs, chars=CHARS, fixed_gates=gates)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def _compare(chunked, full, inputs, gates, *, losses: dict, grads: dict):
    """Per-path losses and terms within tolerance `losses`, every gradient within `grads`."""
    out_c, grads_c = _step(chunked, inputs, gates)
    out_f, grads_f = _step(full, inputs, gates)
    assert torch.equal(out_c.per_path.isnan(), out_f.per_path.isnan())
    assert out_f.per_path[gates > 0].min() > 1.0  # real losses, not zeros
    torch.testing.assert_close(out_c.per_path, out_f.per_path, equal_nan=True, **losses)
    for term in ("distill", "mutual", "variance", "competence"):
        torch.testing.assert_close(out_c.terms[term], out_f.terms[term], **losses)
    assert grads_c.keys() == grads_f.keys()
    assert any("lora" in n for n in grads_c)
    for name, grad in grads_f.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grads_c[name], grad, msg=name, **grads)
    return grads_c


@pytest.mark.parametrize("padding_free", [False, True])
@pytest.mark.parametrize("variant", ["three", "softcap", "frozen", "trainable_head"])
def test_objective_with_the_chunked_loss_equals_the_full_logits_in_float32(
    variant, padding_free, tiny_students, gemma_student, paths_file, make_config
):
    folders = {"llama": tiny_students[0], "qwen": tiny_students[1], "gemma": gemma_student}
    names, frozen = {
        "three": (("llama", "qwen", "gemma"), ()),
        "softcap": (("llama", "gemma"), ()),
        "frozen": (("llama", "qwen"), ("qwen",)),
        "trainable_head": (("llama", "qwen"), ()),
    }[variant]
    cfg = make_config(
        routing__mode="random",
        padding_free=padding_free,
        loss_chunk_tokens=5,  # several chunks per student
        students=[_student(n, folders[n], frozen=n in frozen) for n in names],
    )
    chunked, full, toks = _objectives(cfg)
    assert all(isinstance(h, Head) for h in chunked.heads) and full.heads == [None] * len(names)
    base = {
        n: m.get_base_model() if n not in frozen else m for n, m in zip(names, chunked.students)
    }
    if variant == "softcap":  # Gemma-2-style capping, small enough to bend these logits
        base["gemma"].config.final_logit_softcapping = 0.2
        chunked.heads[1] = chunkable_head(chunked.students[1])
        assert chunked.heads[1].softcap == 0.2
    if variant == "trainable_head":  # tied to the input embedding: both uses add to its gradient
        base["llama"].lm_head.weight.requires_grad_(True)

    data = build_data(paths_file, cfg, toks)
    inputs = [
        collate([data.encoded[n][i] for i in PATHS], tok.pad_token_id, padding_free=padding_free)
        for n, tok in toks.items()
    ]
    gates = torch.tensor([row[: len(names)] for row in GATES], dtype=torch.float32)
    exact = {"atol": 1e-5, "rtol": 1e-5}
    grads = _compare(chunked, full, inputs, gates, losses=exact, grads=exact)
    if variant == "trainable_head":
        assert any(n.endswith("embed_tokens.weight") for n in grads)
    if variant == "frozen":
        assert not any(n.startswith("students.1.") for n in grads)


# bf16: both compute the same bf16 logits and take their cross-entropy in float32, so the losses
# agree to float32 rounding (measured: 5e-7). The gradients go back through bf16 matmuls in
# another order (each token's gradient is scaled after the bf16 matmul, not before): measured
# within 1.1 % of each gradient's largest entry, so 2 % relative with a floor of 2e-3.
BF16 = {"losses": {"atol": 1e-5, "rtol": 1e-5}, "grads": {"atol": 2e-3, "rtol": 2e-2}}


def test_objective_with_the_chunked_loss_is_close_to_the_full_logits_in_bf16(
    tiny_students, gemma_student, paths_file, make_config
):
    folders = {"llama": tiny_students[0], "gemma": gemma_student}
    cfg = make_config(
        routing__mode="random",
        loss_chunk_tokens=7,
        students=[_student(n, f, precision="bf16") for n, f in folders.items()],
    )
    chunked, full, toks = _objectives(cfg)
    assert [h.dtype for h in chunked.heads] == [torch.bfloat16] * 2
    data = build_data(paths_file, cfg, toks)
    inputs = [
        collate([data.encoded[n][i] for i in PATHS], tok.pad_token_id) for n, tok in toks.items()
    ]
    gates = torch.tensor([row[:2] for row in GATES], dtype=torch.float32)
    gates[1, 0] = 1.0  # every student has paths, some shared
    _compare(chunked, full, inputs, gates, **BF16)


class LargestAllocation(TorchDispatchMode):
    """The largest new floating-point tensor any op creates: its bytes, and its rows (elements /
    `vocab`) among those whose last dimension is `vocab` (logits and their gradients). Views and
    in-place results share an input's storage and are not new."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.largest, self.vocab_rows = vocab, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        leaves = pytree.tree_leaves((args, kwargs))
        held = {t.untyped_storage().data_ptr() for t in leaves if isinstance(t, torch.Tensor)}
        for t in pytree.tree_leaves(out):
            if (
                isinstance(t, torch.Tensor)
                and t.is_floating_point()
                and t.untyped_storage().data_ptr() not in held
            ):
                self.largest = max(self.largest, t.untyped_storage().nbytes())
                if t.dim() and t.shape[-1] == self.vocab:
                    self.vocab_rows = max(self.vocab_rows, t.numel() // self.vocab)
        return out


@pytest.mark.parametrize("padding_free", [False, True])
def test_the_largest_tensor_of_a_step_shrinks_from_all_rows_to_one_chunk_of_logits(
    padding_free, tmp_path, paths_file, make_config
):
    """A student whose vocabulary dwarfs its hidden size, as real ones do (8,192 rows, hidden 32).
    With the full logits the largest tensor of the forward and of the backward is the [rows,
    width, V] float32 logits (or their gradient). Chunked, the forward's is one chunk's
    [chunk, V], or [response tokens, V] with a larger chunk (prompt and padding positions get no
    logits), and the backward (the head is frozen) makes no [*, V] tensor at all."""
    from tiny_models import make_tiny_student

    vocab = 8192
    folder = make_tiny_student(tmp_path / "wide", vocab_size=400, hidden=32, vocab_rows=vocab)
    cfg = make_config(
        routing__mode="all",
        peer__enabled=False,
        padding_free=padding_free,
        students=[_student("wide", folder)],
    )
    model, tok = load_student(cfg.students[0])
    batch = collate(
        [build_data(paths_file, cfg, {"wide": tok}).encoded["wide"][i] for i in PATHS],
        tok.pad_token_id,
        padding_free=padding_free,
    )
    response = int((batch["labels"][:, 1:] != IGNORE).sum())
    positions = batch["input_ids"].numel()
    assert 64 < response < positions / 2  # prompts are most of a row here, as in distillation

    def probe(chunk: int | None) -> tuple[LargestAllocation, LargestAllocation]:
        """What one step allocates, forward and backward apart."""
        objective = QRDistillObjective(
            [model], cfg.model_copy(update={"loss_chunk_tokens": chunk}), None
        )
        with LargestAllocation(vocab) as forward:
            out = objective([batch], chars=CHARS)
        with LargestAllocation(vocab) as backward:
            out.loss.backward()
        return forward, backward

    row = 4 * vocab  # bytes of one float32 row of logits
    full = probe(None)
    assert [p.largest for p in full] == [positions * row] * 2
    assert [p.vocab_rows for p in full] == [positions] * 2
    for chunk, rows in ((64, 64), (10_000, response)):
        forward, backward = probe(chunk)
        assert (forward.largest, forward.vocab_rows) == (rows * row, rows)
        assert backward.vocab_rows == 0 and 0 < backward.largest < 64 * row


def test_students_the_chunked_loss_would_not_reproduce_keep_the_full_logits(
    tiny_students, tmp_path, make_config
):
    from transformers import AutoModelForCausalLM, GraniteConfig

    # Granite divides its logits by `logits_scaling`: chunking would drop that.
    granite = AutoModelForCausalLM.from_config(
        GraniteConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            logits_scaling=4.0,
        )
    )
    assert "GraniteForCausalLM" in chunkable_head(granite)
    # A LoRA adapter on the head adds to its output: it is not a plain Linear any more.
    adapted = _student("llama", tiny_students[0], lora={"target_modules": ["q_proj", "lm_head"]})
    cfg = make_config(routing__mode="all", peer__enabled=False, students=[adapted])
    model = load_student(cfg.students[0])[0]
    assert "not a plain bias-free Linear" in chunkable_head(model)
    with pytest.warns(UserWarning, match="loss from the full logits"):
        assert QRDistillObjective([model], cfg, None).heads == [None]

    # Token-level peer teaching reads the full logits of every student, so it keeps them.
    students = [load_student(s)[0] for s in make_config().students]

    def heads(**overrides):
        return QRDistillObjective(students, make_config(**overrides), torch.randn(8, 4)).heads

    assert all(isinstance(h, Head) for h in heads())  # the default: chunked
    assert heads(peer__kind="logits") == [None, None]
    assert heads(loss_chunk_tokens=None) == [None, None]
    with pytest.raises(ValidationError, match="loss_chunk_tokens"):
        make_config(loss_chunk_tokens=0)


def test_a_compiled_student_keeps_whole_graphs_under_the_chunked_loss(
    tiny_students, paths_file, make_config
):
    """The chunked loss reads the last hidden state through a hook on the decoder, not through
    transformers' output_hidden_states, whose capturing breaks a compiled student's graph."""
    from torch._dynamo.utils import counters

    cfg = make_config(routing__mode="all", peer__enabled=True, loss_chunk_tokens=5)
    loaded = [load_student(s) for s in cfg.students]
    toks = {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)}
    data = build_data(paths_file, cfg, toks)
    inputs = [
        collate([data.encoded[n][i] for i in PATHS], tok.pad_token_id) for n, tok in toks.items()
    ]
    model = QRDistillObjective([m for m, _ in loaded], cfg, torch.randn(32, 8))
    eager = model(inputs, chars=CHARS).per_path
    torch._dynamo.reset()
    counters.clear()
    for student in model.students:  # dynamo's tracing alone: graph breaks do not depend on inductor
        student.compile(backend="eager")
    compiled = model(inputs, chars=CHARS)
    compiled.loss.backward()
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] == 2  # one per student
    torch.testing.assert_close(compiled.per_path, eager, atol=1e-5, rtol=1e-5)
