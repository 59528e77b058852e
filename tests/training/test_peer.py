"""Peer teaching: response-only pooling, alignment across tokenizers, no collapse, trained gamma,
logit-level KL, and every trainable module in the optimizer."""

from __future__ import annotations

import pytest
import torch

from qrdistill.training.data import IGNORE, build_data, collate
from qrdistill.training.objective import QRDistillObjective
from qrdistill.training.peer import PeerTeaching, RoutedRows, logit_mutual_loss, pool_response
from qrdistill.training.recipe import param_groups
from qrdistill.training.students import load_student


def test_pooling_uses_response_tokens_only():
    hidden = torch.randn(2, 6, 4)
    labels = torch.tensor(
        [[IGNORE, IGNORE, 5, 6, 7, IGNORE], [IGNORE, 3, 4, IGNORE, IGNORE, IGNORE]]
    )
    pooled = pool_response(hidden, labels)
    assert torch.allclose(pooled[0], hidden[0, 2:5].mean(0))
    assert torch.allclose(pooled[1], hidden[1, 1:3].mean(0))
    changed = hidden.clone()
    changed[0, :2] += 100.0  # prompt
    changed[1, 3:] -= 100.0  # padding
    assert torch.allclose(pool_response(changed, labels), pooled)


def _setup(cfg, paths_file):
    loaded = [load_student(s) for s in cfg.students]
    toks = {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)}
    data = build_data(paths_file, cfg, toks)
    model = QRDistillObjective([m for m, _ in loaded], cfg, torch.randn(32, 8))
    return model, data, toks


def everyone(pooled: list[torch.Tensor]) -> list[RoutedRows]:
    """Every student computed every row."""
    return [RoutedRows(torch.arange(p.shape[0]), p) for p in pooled]


def _inputs(data, toks, idx, extra_pad=None):
    inputs = []
    for name, tok in toks.items():
        batch = collate([data.encoded[name][i] for i in idx], tok.pad_token_id)
        if name == extra_pad:  # 7 more padding columns for this student only
            b, _ = batch["input_ids"].shape
            batch = {
                "input_ids": torch.cat(
                    [batch["input_ids"], torch.full((b, 7), tok.pad_token_id)], 1
                ),
                "attention_mask": torch.cat(
                    [batch["attention_mask"], torch.zeros(b, 7, dtype=torch.long)], 1
                ),
                "labels": torch.cat([batch["labels"], torch.full((b, 7), IGNORE)], 1),
            }
        inputs.append(batch)
    return inputs


def test_students_with_different_tokenizers_are_compared_per_path_not_per_position(
    tiny_students, paths_file, make_config
):
    cfg = make_config(routing__mode="all")
    model, data, toks = _setup(cfg, paths_file)
    model.eval()
    idx = [0, 1, 2, 3]

    def run(order, pad=None):
        return model(
            _inputs(data, toks, order, extra_pad=pad),
            chars=torch.full((4,), 50.0),
            fixed_gates=torch.ones(4, 2),
        )

    with torch.no_grad():
        base, padded = run(idx), run(idx, pad="qwen")
        # Path i of one student is paired with path i of the other: a permutation of the batch
        # permutes nothing inside a pair, so the (per-path averaged) loss is unchanged.
        perm = run([3, 1, 0, 2])
    assert torch.allclose(
        base.terms["mutual"], padded.terms["mutual"], atol=1e-5
    )  # padding is invisible
    assert torch.allclose(base.per_path, padded.per_path, atol=1e-5)
    assert torch.allclose(base.terms["mutual"], perm.terms["mutual"], atol=1e-5)
    assert base.terms["mutual"] > 0


def test_peer_terms_use_only_rows_that_several_students_computed(
    tiny_students, paths_file, make_config
):
    """Sparse routing: a path computed by one student alone has no ensemble to learn from. The
    mutual term of a partly routed batch equals that of the batch of its shared rows."""
    cfg = make_config(routing__mode="all")
    model, data, toks = _setup(cfg, paths_file)
    model.eval()
    gates = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    with torch.no_grad():
        sparse = model(
            _inputs(data, toks, [0, 1, 2, 3]), chars=torch.full((4,), 50.0), fixed_gates=gates
        )
        shared = model(
            _inputs(data, toks, [0, 2]), chars=torch.full((2,), 50.0), fixed_gates=torch.ones(2, 2)
        )
    assert torch.allclose(sparse.terms["mutual"], shared.terms["mutual"], atol=1e-5)
    assert torch.allclose(sparse.terms["competence"], shared.terms["competence"], atol=1e-5)
    assert torch.isnan(sparse.per_path[1, 1]) and torch.isnan(sparse.per_path[3, 0])
    assert torch.allclose(sparse.per_path[[0, 2]], shared.per_path, atol=1e-5)
    with torch.no_grad():
        alone = model(
            _inputs(data, toks, [1]),
            chars=torch.full((1,), 50.0),
            fixed_gates=torch.tensor([[1.0, 0.0]]),
        )
    assert alone.terms["mutual"] == 0 and alone.terms["competence"] == 0


def test_peer_terms_under_bf16_autocast_when_a_student_computed_nothing(
    tiny_students, paths_file, make_config
):
    """Mixed precision (as under accelerate's bf16) with one student routed no row: the absent
    student's column and the others' projections still combine."""
    cfg = make_config(routing__mode="all")
    model, data, toks = _setup(cfg, paths_file)
    gates = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_inputs(data, toks, [0, 1]), chars=torch.full((2,), 50.0), fixed_gates=gates)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.terms["mutual"] == 0 and out.terms["variance"] > 0


def test_projections_do_not_collapse():
    """Pooled LM states share a large common component; trained only to agree, projections collapse
    to a constant vector (the test detects it); the variance hinge prevents it, the LayerNorm
    fixes the norm, and the students still get aligned."""

    def train(lambda_variance: float) -> tuple[float, float, float, float]:
        torch.manual_seed(0)
        peer = PeerTeaching([24, 40], dim=16)
        a = torch.randn(32, 24) + 5 * torch.randn(1, 24)
        b = torch.randn(32, 40) + 5 * torch.randn(1, 40)
        opt = torch.optim.Adam(peer.parameters(), lr=1e-2)
        first = None
        for _ in range(300):
            out = peer(everyone([a, b]), 32, torch.rand(32, 2))
            first = out["mutual"].item() if first is None else first
            loss = out["mutual"] + lambda_variance * out["variance"] + out["competence"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            z, _ = peer.project(everyone([a, b]), 32)
            last = float(peer(everyone([a, b]), 32, torch.rand(32, 2))["mutual"])
            return float(z.std(0).mean()), float(z.norm(dim=-1).min()), first, last

    std, norm, _, _ = train(0.0)
    assert std < 0.2  # the failure mode is real
    std, norm, first, last = train(1.0)
    assert std > 0.8 and abs(norm - 4.0) < 1e-3  # sqrt(dim): never zero
    assert last < 0.1 * first  # and the two students' spaces got aligned


def test_competence_weights_are_trained_by_the_competence_loss_only():
    torch.manual_seed(0)
    peer = PeerTeaching([8, 12], dim=8)
    pooled = [torch.randn(16, 8), torch.randn(16, 12)]
    per_char = torch.stack([torch.full((16,), 0.5), torch.full((16,), 2.0)], 1)  # student 0 better
    out = peer(everyone(pooled), 16, per_char)
    out["mutual"].backward(retain_graph=True)
    assert peer.competence.grad is None or peer.competence.grad.abs().sum() == 0
    assert peer.proj[0].weight.grad.abs().sum() > 0  # projections learn from the mutual loss
    opt = torch.optim.Adam([peer.competence], lr=0.05)
    for _ in range(100):
        loss = peer(everyone(pooled), 16, per_char)["competence"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    gamma = peer.gamma(everyone(pooled), 16)
    assert (gamma[:, 0] > 0.8).all()  # the ensemble leans on the student with the lower loss


def test_logit_kl_is_zero_between_identical_students_and_ignores_prompt_and_padding():
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[IGNORE, IGNORE, 4, 5, IGNORE], [IGNORE, 1, 2, 3, 4]])
    gamma = torch.full((2, 2), 0.5)
    assert logit_mutual_loss([logits, logits.clone()], labels, gamma) < 1e-6
    other = logits.clone()
    other[0, 0, 3] += 5.0  # predicts a prompt token: not a response position
    other[0, 4, 3] += 5.0  # last position of row 0: predicts padding
    assert logit_mutual_loss([logits, other], labels, gamma) < 1e-6
    other[0, 2, 3] += 5.0  # predicts response token 5
    assert logit_mutual_loss([logits, other], labels, gamma) > 1e-3


def test_logit_peer_refuses_different_tokenizers_before_any_model_is_loaded(
    tiny_students, paths_file, make_config, monkeypatch
):
    from qrdistill.errors import ConfigError
    from qrdistill.models import load_tokenizer
    from qrdistill.training import recipe

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before the tokenizers were checked")

    monkeypatch.setattr(recipe, "load_student", no_models)
    cfg = make_config(routing__mode="all", peer__kind="logits")
    with pytest.raises(ConfigError, match="share a tokenizer.*peer.kind: hidden"):
        recipe.Recipe(cfg, paths_file, paths_file.parent / "out").setup()
    toks = {s.name: load_tokenizer(s.model) for s in cfg.students}
    with pytest.raises(ConfigError, match="share a tokenizer"):
        build_data(paths_file, cfg, toks)


def test_every_trainable_module_is_in_the_optimizer(tiny_students, paths_file, make_config):
    cfg = make_config()
    model, _, _ = _setup(cfg, paths_file)
    groups = param_groups(model, cfg)
    in_groups = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(in_groups) == len(set(in_groups))
    assert set(in_groups) == set(trainable)
    assert {g["name"] for g in groups} == {"llama", "qwen", "peer"}
    assert not list(model.router.parameters())  # fitted in closed form, nothing to optimise


def test_logit_peers_align_a_student_whose_rows_are_all_shorter_than_a_shared_row():
    """Three students sharing a tokenizer: row 1 (6 positions) is shared by students 1 and 2
    only; student 0 computed rows 0 and 2, 4 positions at most. Its logits past position 4 are
    never read, so padding them with anything changes nothing."""
    torch.manual_seed(0)
    labels = torch.full((3, 6), IGNORE)
    labels[0, 2:4], labels[1, 2:6], labels[2, 1:3] = 1, 2, 3
    short = torch.randn(2, 4, 5)
    others = [RoutedRows(torch.arange(3), torch.randn(3, 8), torch.randn(3, 6, 5)) for _ in "ab"]
    peer = PeerTeaching([8, 8, 8], dim=4, kind="logits")
    per_char, pooled = torch.rand(3, 3), torch.randn(2, 8)

    def mutual(logits):
        routed = [RoutedRows(torch.tensor([0, 2]), pooled, logits), *others]
        return peer(routed, 3, per_char, labels=labels)["mutual"]

    garbage = torch.cat([short, torch.randn(2, 2, 5) * 100], dim=1)
    assert mutual(short) > 0
    assert torch.allclose(mutual(short), mutual(garbage))
