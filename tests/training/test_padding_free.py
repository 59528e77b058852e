"""Padding-free batches (TrainConfig.padding_free): the same per-path losses, gradients and peer
inputs as right-padded batches, on a Llama-like, a Qwen2-like and a Gemma-3-like (sliding-window)
tiny student, with sparse routing (each student computes a different subset of the paths)."""

from __future__ import annotations

import pytest
import torch

from qrdistill.training.data import IGNORE, build_data, collate
from qrdistill.training.objective import QRDistillObjective
from qrdistill.training.recipe import train
from qrdistill.training.students import load_student
from qrdistill.utils.io import read_jsonl

PATHS = [0, 4, 5, 7, 11]  # all three styles, lengths differ by up to 2x


@pytest.fixture(scope="module")
def gemma_student(tmp_path_factory):
    from tiny_models import make_tiny_student

    # The llama student's tokenizer (same vocabulary size, chat template): kind logits works.
    return make_tiny_student(
        tmp_path_factory.mktemp("gemma") / "student_g", arch="gemma3", vocab_size=400, seed=2
    )


def _student(name: str, folder) -> dict:
    return {
        "name": name,
        "model": str(folder),
        "lr": 1e-3,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    }


def _setup(cfg, paths_file):
    torch.manual_seed(0)
    loaded = [load_student(s) for s in cfg.students]
    toks = {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)}
    data = build_data(paths_file, cfg, toks)
    model = QRDistillObjective([m for m, _ in loaded], cfg, torch.randn(32, 8))
    for p in model.peer.parameters():  # zero-initialised competence weights: give gamma a slope
        torch.nn.init.normal_(p, std=0.5)
    return model, data, toks


def _step(model, data, toks, gates, padding_free: bool):
    """One forward and backward; what peer teaching received, the output and the gradients."""
    inputs = [
        collate([data.encoded[n][i] for i in PATHS], tok.pad_token_id, padding_free=padding_free)
        for n, tok in toks.items()
    ]
    seen = {}
    peer_forward = type(model.peer).forward

    def spy(routed, n_paths, per_char, labels=None):  # the real forward, inputs recorded
        seen.update(routed=routed, labels=labels)
        return peer_forward(model.peer, routed, n_paths, per_char, labels=labels)

    model.peer.forward = spy
    model.zero_grad()
    out = model(inputs, chars=torch.tensor([60.0, 80, 70, 90, 50]), fixed_gates=gates)
    out.loss.backward()
    del model.peer.forward
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, seen, grads


@pytest.mark.parametrize(
    ("kind", "students", "gates"),
    [
        # llama, qwen2, gemma3: three tokenizer/architecture pairs; gemma3 alone on the last path
        (
            "hidden",
            ("llama", "qwen", "gemma"),
            [[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1]],
        ),
        # a shared tokenizer: token-level peer teaching compares logits position by position
        ("logits", ("llama", "gemma"), [[1, 1], [0, 1], [1, 0], [1, 1], [1, 1]]),
    ],
)
def test_padding_free_gives_the_padded_losses_gradients_and_peer_inputs(
    kind, students, gates, tiny_students, gemma_student, paths_file, make_config
):
    folders = {"llama": tiny_students[0], "qwen": tiny_students[1], "gemma": gemma_student}
    cfg = make_config(
        routing__mode="random",
        peer__kind=kind,
        students=[_student(n, folders[n]) for n in students],
    )
    model, data, toks = _setup(cfg, paths_file)
    gates = torch.tensor(gates, dtype=torch.float32)
    padded, seen_padded, grads_padded = _step(model, data, toks, gates, padding_free=False)
    flat, seen_flat, grads_flat = _step(model, data, toks, gates, padding_free=True)

    assert torch.equal(padded.per_path.isnan(), flat.per_path.isnan())
    assert torch.allclose(padded.per_path, flat.per_path, atol=1e-4, equal_nan=True)
    assert padded.per_path[gates > 0].min() > 1.0  # real losses, not zeros
    for term in ("distill", "mutual", "variance", "competence"):
        assert torch.allclose(padded.terms[term], flat.terms[term], atol=1e-4), term
    assert flat.terms["mutual"] > 0
    assert torch.equal(padded.tokens, flat.tokens)  # real tokens only, in both layouts

    assert grads_padded.keys() == grads_flat.keys()
    assert any("lora" in n for n in grads_flat)
    for name, grad in grads_padded.items():
        assert torch.allclose(grad, grads_flat[name], atol=1e-4, rtol=1e-3), name

    for a, b in zip(seen_padded["routed"], seen_flat["routed"]):
        assert torch.equal(a.rows, b.rows)
        assert torch.allclose(a.pooled, b.pooled, atol=1e-4)
        if kind == "logits":
            # compared where the path has tokens; beyond, padded rows hold logits of padding
            width = b.logits.shape[1]
            real = seen_flat["labels"][a.rows, :width] != IGNORE
            assert torch.allclose(a.logits[:, :width][real], b.logits[real], atol=1e-4)
    if kind == "logits":
        labels_padded, labels_flat = seen_padded["labels"], seen_flat["labels"]
        assert torch.equal(labels_padded[:, : labels_flat.shape[1]], labels_flat)
        assert (labels_padded[:, labels_flat.shape[1] :] == IGNORE).all()


def test_padding_free_row_restarts_positions_and_never_predicts_across_paths(
    tiny_students, paths_file, make_config
):
    cfg = make_config()
    tok = load_student(cfg.students[0])[1]
    data = build_data(paths_file, cfg, {"llama": tok})
    encoded = [data.encoded["llama"][i] for i in PATHS]
    batch = collate(encoded, tok.pad_token_id, padding_free=True)
    lengths = [len(e.input_ids) for e in encoded]
    assert batch["input_ids"].shape == (1, sum(lengths))  # no padding
    assert "attention_mask" not in batch  # transformers then reads the paths off position_ids
    starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
    assert batch["position_ids"][0, starts].eq(0).all()
    assert batch["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
    assert batch["seq_idx"][0].tolist() == [k for k, n in enumerate(lengths) for _ in range(n)]
    # The first token of a path is never a target: the previous path's last token predicts nothing.
    assert (batch["labels"][0, starts] == IGNORE).all()
    assert batch["labels"][0].tolist() == [
        IGNORE if t == 0 else label for e in encoded for t, label in enumerate(e.labels)
    ]


def test_training_with_padding_free_logs_the_padded_losses(tmp_path, paths_file, make_config):
    rows = {}
    for padding_free in (False, True):
        cfg = make_config(routing__mode="random", max_steps=2, padding_free=padding_free)
        out = train(cfg, paths_file, tmp_path / str(padding_free))
        rows[padding_free] = read_jsonl(out / "metrics.jsonl")
    assert len(rows[True]) == 2
    assert all(v > 0 for k, v in rows[True][-1].items() if k.startswith("tokens/"))
    for padded, flat in zip(rows[False], rows[True]):
        for key, value in padded.items():
            if key.startswith("tokens/"):
                assert flat[key] == value  # real tokens counted alike
            elif key.startswith(("loss/", "objective", "distill", "mutual")):
                assert flat[key] == pytest.approx(value, abs=1e-4), key
