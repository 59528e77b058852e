"""The router: exact gate sampling, a comparative signal that measures fit rather than difficulty,
a real gradient through the objective, and a sparse step where a zero gate costs nothing."""

from __future__ import annotations

import torch

from qrdistill.training import router as router_mod
from qrdistill.training.router import (
    Router,
    comparative_signal,
    entropy_regulariser,
    logistic_noise,
    no_preference_band,
    router_loss,
    sample_gates,
    tau_at,
)


def test_gates_open_with_exactly_the_router_probability():
    scores = torch.tensor([[-2.0, 0.0, 1.5]]).expand(20_000, 3)
    gates = sample_gates(
        scores, logistic_noise((20_000, 3), torch.Generator().manual_seed(0)), min_students=0
    )
    assert set(gates.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(gates.mean(0), torch.sigmoid(scores[0]), atol=0.01)


def test_every_path_reaches_at_least_min_students_and_top_up_takes_the_highest_scores():
    gen = torch.Generator().manual_seed(1)
    scores = torch.full((500, 3), -4.0)  # left alone, almost every path would reach nobody
    noise = logistic_noise((500, 3), gen)
    assert (sample_gates(scores, noise, 0).sum(1) == 0).float().mean() > 0.9
    for k in (1, 2, 3):
        gates = sample_gates(scores, noise, k)
        assert (gates.sum(1) >= k).all()
    gates = sample_gates(torch.tensor([[-5.0, -1.0, -9.0]]), torch.zeros(1, 3), 1)
    assert gates.tolist() == [[0.0, 1.0, 0.0]]


def test_signal_measures_fit_not_difficulty_nor_a_students_loss_scale():
    # Path 0 suits student 0, path 1 suits student 1; path 1 is harder for both; student 1's
    # losses are on a larger scale (another tokenizer).
    losses = torch.tensor([[1.0, 3.5], [3.0, 3.0]])
    signal = comparative_signal(losses)
    assert signal[0, 0] < 0 < signal[0, 1] and signal[1, 1] < 0 < signal[1, 0]
    # A path's difficulty (a constant added to its row) and a student's level (a constant added
    # to its column) change nothing.
    assert torch.allclose(comparative_signal(losses + torch.tensor([[0.0], [5.0]])), signal)
    assert torch.allclose(comparative_signal(losses + torch.tensor([0.0, 2.0])), signal)
    assert torch.allclose(signal.sum(1), torch.zeros(2))  # comparative on each path ...
    assert torch.allclose(signal.sum(0), torch.zeros(2))  # ... and no student favoured overall


def test_signal_uses_only_paths_that_several_students_computed_in_this_step():
    nan = float("nan")
    losses = torch.tensor([[1.0, 2.0, nan], [3.0, nan, nan], [2.0, 1.0, 4.0], [nan, nan, nan]])
    signal = comparative_signal(losses)
    assert (signal[1] == 0).all() and (signal[3] == 0).all()  # one student, or none
    assert signal[0, 2] == 0 and signal[0, 0] < 0 < signal[0, 1]
    assert torch.allclose(signal.sum(1), torch.zeros(4), atol=1e-6)
    # A single shared row says nothing about fit once the students' levels are removed.
    assert (comparative_signal(torch.tensor([[1.0, 3.0], [2.0, nan]])) == 0).all()


def test_router_loss_gradient_opens_the_gate_where_the_path_fits():
    logits = torch.zeros(2, 2, requires_grad=True)
    losses = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    router_loss(torch.sigmoid(logits), comparative_signal(losses)).backward()
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] < 0  # descent raises these logits
    assert logits.grad[0, 1] > 0 and logits.grad[1, 0] > 0


def _simulate(fit: float, seed: int = 0, steps: int = 400) -> torch.Tensor:
    """A router trained on simulated students: style 0 is `fit` easier for student 0; each
    student's loss on a path falls every time it trains on it, and all its losses fall the more
    it has trained. Returns the late routing share per (style, student)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = 64
    router = Router(in_dim=8, n_students=2, hidden=16)
    opt = torch.optim.Adam(router.parameters(), lr=1e-2)
    emb = torch.randn(n, 8, generator=gen)
    style = torch.arange(n) % 2
    trained = torch.zeros(n, 2)
    shares = []
    for step in range(steps):
        items = torch.randperm(n, generator=gen)[:16]
        tau = tau_at(step, steps, 1.0, 0.3)
        logits = router(emb[items])
        gates = sample_gates(logits.detach() / tau, logistic_noise((16, 2), gen), 1)
        losses = 3.0 - 0.2 * trained[items].clamp(max=8) - 0.002 * trained.sum(0)
        losses[:, 0] -= fit * (style[items] == 0).float()
        losses = torch.where(
            gates > 0, losses + 0.05 * torch.randn(16, 2, generator=gen), float("nan")
        )
        probs = torch.sigmoid(logits / tau)
        loss = router_loss(probs, comparative_signal(losses)) - 0.01 * entropy_regulariser(probs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        trained[items] += gates
        shares.append(torch.stack([gates[style[items] == s].mean(0) for s in (0, 1)]))
    return torch.stack(shares[-100:]).nanmean(0)


def test_a_student_that_merely_trains_more_does_not_capture_every_path():
    """No difference in fit. A signal against remembered losses, or against a lagging running
    mean per student, let the student that trained more win everywhere (routing collapsed to
    1.0 / 0.0 in this simulation); comparing fresh losses within the batch keeps both in use."""
    for seed in (0, 1):
        assert (_simulate(fit=0.0, seed=seed) > 0.3).all()


def test_router_learns_which_student_a_style_suits_from_student_like_losses():
    late = _simulate(fit=1.0)
    assert late[0, 0] - late[0, 1] > 0.3 and late[1, 1] - late[1, 0] > 0.3


def test_entropy_regulariser_has_gradient_and_peaks_at_half():
    probs = torch.full((4, 2), 0.2, requires_grad=True)
    value = entropy_regulariser(probs)
    value.backward()
    assert probs.grad.abs().sum() > 0
    assert entropy_regulariser(torch.full((4, 2), 0.5)) > value


def test_no_preference_band_is_the_central_binomial_interval():
    # Binomial(10, 1/2): P(X <= 1) = 0.011, P(X <= 2) = 0.055, so 95 % of shares lie in [0.2, 0.8].
    assert no_preference_band(0.5, 10) == (0.2, 0.8)
    low, high = no_preference_band(0.5, 400)
    assert 0.44 < low < 0.46 and 0.54 < high < 0.56  # about 0.5 +- 1.96 * 0.025
    assert no_preference_band(0.0, 7) == (0.0, 0.0) and no_preference_band(0.3, 0) == (0.0, 1.0)
    # Simulated routers with no preference fall inside about 95 % of the time.
    gen = torch.Generator().manual_seed(0)
    low, high = no_preference_band(0.6, 24)
    shares = (torch.rand(4000, 24, generator=gen) < 0.6).float().mean(1)
    inside = ((shares >= low - 1e-9) & (shares <= high + 1e-9)).float().mean()
    assert 0.94 < inside <= 1.0


def test_router_learns_which_student_a_style_suits_not_which_style_is_hard():
    """Synthetic losses: style 0 suits student 0, style 1 suits student 1, style 2 is hard for
    both. Trained with the functions the objective uses, the router must route styles 0 and 1 by
    fit, and every path must reach a student (the old, per-student-mean signal left hard paths
    with nobody)."""
    torch.manual_seed(0)
    base = torch.tensor([[1.0, 2.0], [2.0, 1.0], [4.0, 4.0]])
    router = Router(in_dim=8, n_students=2, hidden=16)
    opt = torch.optim.Adam(router.parameters(), lr=1e-2)
    centres = torch.randn(3, 8)
    gen = torch.Generator().manual_seed(0)
    steps = 300
    for step in range(steps):
        style = torch.randint(3, (32,), generator=gen)
        emb = centres[style] + 0.3 * torch.randn(32, 8, generator=gen)
        losses = base[style] + 0.2 * torch.randn(32, 2, generator=gen)
        probs = torch.sigmoid(router(emb) / tau_at(step, steps, 1.0, 0.3))
        loss = router_loss(probs, comparative_signal(losses)) - 0.01 * entropy_regulariser(probs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        style = torch.arange(3).repeat_interleave(200)
        scores = router(centres[style] + 0.3 * torch.randn(600, 8)) / 0.3
        gates = sample_gates(scores, logistic_noise((600, 2), gen), min_students=1)
        rates = torch.stack([gates[style == s].mean(0) for s in range(3)])
    assert rates[0, 0] - rates[0, 1] > 0.6 and rates[1, 1] - rates[1, 0] > 0.6
    assert (gates.sum(1) >= 1).all()


def test_router_parameters_get_a_nonzero_gradient_from_the_student_losses(
    tiny_students, paths_file, make_config
):
    """Through the real objective with tiny students, every gate open so the students' losses
    are compared on every path; the entropy term is off, so the gradient can only come from the
    students' losses."""
    from qrdistill.training.data import build_data, collate
    from qrdistill.training.objective import QRDistillObjective
    from qrdistill.training.students import load_student

    cfg = make_config(lambda_entropy=0.0, peer__enabled=False)
    loaded = [load_student(s) for s in cfg.students]
    data = build_data(paths_file, cfg, {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)})
    model = QRDistillObjective([m for m, _ in loaded], cfg, embed_dim=8)
    idx = list(range(6))
    inputs = [
        collate([data.encoded[s.name][i] for i in idx], tok.pad_token_id)
        for s, (_, tok) in zip(cfg.students, loaded)
    ]
    out = model(
        inputs,
        chars=torch.ones(6),
        embeddings=torch.randn(6, 8),
        noise=torch.full((6, 2), 20.0),
        tau=1.0,
    )
    assert (out.gates == 1).all() and out.terms["router"] != 0
    out.loss.backward()
    grads = [p.grad for p in model.router.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


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
