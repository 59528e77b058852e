"""The router learns: real gradient from the students' per-path losses, and a planted signal."""

from __future__ import annotations

import torch

from qrdistill.training import router as router_mod
from qrdistill.training.router import (Router, entropy_regulariser, gated_distill_loss, logistic_noise,
                                       straight_through_gates, tau_at)


def test_gates_are_hard_in_forward_and_soft_in_backward():
    logits = torch.randn(6, 3, requires_grad=True)
    gates = straight_through_gates(logits, torch.zeros(6, 3), tau=0.5)
    assert set(gates.detach().unique().tolist()) <= {0.0, 1.0}
    (gates * torch.arange(3.0)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_naive_gated_loss_routes_nothing_but_the_baseline_makes_the_sign_informative():
    per_path = torch.tensor([[1.0, 3.0], [3.0, 1.0]])  # path 0 suits student 0, path 1 student 1
    logits = torch.zeros(2, 2, requires_grad=True)
    gates = straight_through_gates(logits, torch.zeros(2, 2) + 0.1, tau=1.0)
    gated_distill_loss(per_path, gates, None).sum().backward()
    assert (logits.grad > 0).all()  # without a baseline every gate is pushed towards 0
    logits.grad = None
    gates = straight_through_gates(logits, torch.zeros(2, 2) + 0.1, tau=1.0)
    gated_distill_loss(per_path, gates, per_path.mean(0)).sum().backward()
    # With the running-mean baseline: open the gate where the path is easier than usual.
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] < 0
    assert logits.grad[0, 1] > 0 and logits.grad[1, 0] > 0


def test_entropy_regulariser_has_gradient_and_peaks_at_half():
    probs = torch.full((4, 2), 0.2, requires_grad=True)
    value = entropy_regulariser(probs)
    value.backward()
    assert probs.grad.abs().sum() > 0  # unlike the mean of hard gates
    assert entropy_regulariser(torch.full((4, 2), 0.5)) > value


def test_router_parameters_get_a_nonzero_gradient_from_the_student_loss(tiny_students, paths_file, make_config):
    """Through the real objective with tiny students; the entropy term is switched off so the
    gradient can only come from the students' per-path losses."""
    from qrdistill.training.data import build_data, collate
    from qrdistill.training.objective import QRDistillObjective
    from qrdistill.training.students import load_student

    cfg = make_config(lambda_entropy=0.0, peer__enabled=False)
    loaded = [load_student(s) for s in cfg.students]
    data = build_data(paths_file, cfg, {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)})
    model = QRDistillObjective([m for m, _ in loaded], cfg, embed_dim=8)
    idx = list(range(6))
    inputs = [collate([data.encoded[s.name][i] for i in idx], tok.pad_token_id)
              for s, (_, tok) in zip(cfg.students, loaded)]
    out = model(inputs, chars=torch.ones(6), embeddings=torch.randn(6, 8),
                noise=logistic_noise((6, 2), torch.Generator().manual_seed(0)), tau=1.0)
    out["loss"].backward()
    grads = [p.grad for p in model.router.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # And the students only learn from paths routed to them.
    assert set(out["gates"].unique().tolist()) <= {0.0, 1.0}


def test_router_learns_a_planted_style_signal():
    """Three styles, two students: style 0 is easy for student 0 only, style 1 for student 1 only,
    style 2 for both. Trained with the same functions the recipe uses, the router must send each
    style to the students that learn from it (a path may go to several)."""
    torch.manual_seed(0)
    good = torch.tensor([[1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    router = Router(in_dim=8, n_students=2, hidden=16)
    opt = torch.optim.Adam(router.parameters(), lr=1e-2)
    centres = torch.randn(3, 8)
    gen = torch.Generator().manual_seed(0)
    steps = 300
    for step in range(steps):
        style = torch.randint(3, (32,), generator=gen)
        emb = centres[style] + 0.3 * torch.randn(32, 8, generator=gen)
        per_path = torch.where(good[style], 1.0, 3.0) + 0.2 * torch.randn(32, 2, generator=gen)
        logits = router(emb)
        gates = straight_through_gates(logits, logistic_noise((32, 2), gen),
                                       tau_at(step, steps, 1.0, 0.3))
        loss = gated_distill_loss(per_path, gates, router.baseline).sum() \
            - 0.01 * entropy_regulariser(torch.sigmoid(logits))
        opt.zero_grad()
        loss.backward()
        opt.step()
        router.update_baseline(per_path.mean(0), 0.9)
    with torch.no_grad():
        style = torch.arange(3).repeat_interleave(50)
        rates = torch.stack([(torch.sigmoid(router(centres[style] + 0.3 * torch.randn(150, 8)))[style == s] > 0.5)
                             .float().mean(0) for s in range(3)])
    assert rates[0, 0] > 0.9 and rates[0, 1] < 0.1
    assert rates[1, 1] > 0.9 and rates[1, 0] < 0.1
    assert (rates[2] > 0.9).all()


def test_tau_schedule_anneals_from_start_to_end():
    assert tau_at(0, 10, 1.0, 0.25) == 1.0
    assert abs(tau_at(10, 10, 1.0, 0.25) - 0.25) < 1e-9
    assert 0.25 < tau_at(5, 10, 1.0, 0.25) < 1.0


def test_embeddings_are_cached_on_disk_per_encoder_and_text(tmp_path, monkeypatch):
    texts = ["a path about apples", "a program that prints 72", "a path about apples"]
    first = router_mod.embed_texts(texts, "minilm", tmp_path)
    assert first.shape == (3, 384) and torch.equal(first[0], first[2])

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder must not be loaded again for cached texts")

    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", refuse)
    assert torch.equal(router_mod.embed_texts(texts[:2], "minilm", tmp_path), first[:2])
