"""The router: exact gate sampling, a comparative signal that measures fit rather than difficulty,
a real gradient through the objective, and a sparse step where a zero gate costs nothing."""

from __future__ import annotations

import torch

from qrdistill.training import router as router_mod
from qrdistill.training.router import (Router, comparative_signal, entropy_regulariser, logistic_noise,
                                       no_preference_band, router_loss, sample_gates, tau_at)


def test_gates_open_with_exactly_the_router_probability():
    scores = torch.tensor([[-2.0, 0.0, 1.5]]).expand(20_000, 3)
    gates = sample_gates(scores, logistic_noise((20_000, 3), torch.Generator().manual_seed(0)), min_students=0)
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
    signal = comparative_signal(losses, losses.mean(0))
    assert signal[0, 0] < 0 < signal[0, 1] and signal[1, 1] < 0 < signal[1, 0]
    # A path's difficulty (a constant added to its row) and a student's level (a constant added
    # to its column, and to its mean) change nothing.
    harder = losses + torch.tensor([[0.0], [5.0]])
    assert torch.allclose(comparative_signal(harder, harder.mean(0)), signal)
    shifted = losses + torch.tensor([0.0, 2.0])
    assert torch.allclose(comparative_signal(shifted, shifted.mean(0)), signal)
    assert torch.allclose(signal.sum(1), torch.zeros(2))  # comparative: sums to 0 on each path


def test_signal_is_zero_where_a_loss_is_unknown_or_a_student_is_alone_on_the_path():
    nan = float("nan")
    losses = torch.tensor([[1.0, nan, 3.0], [nan, 2.0, nan], [nan, nan, nan]])
    signal = comparative_signal(losses, torch.tensor([1.0, 2.0, 2.0]))
    assert signal[0, 1] == 0 and (signal[1] == 0).all() and (signal[2] == 0).all()
    assert signal[0, 0] != 0 and signal[0, 2] != 0


def test_router_loss_gradient_opens_the_gate_where_the_path_fits():
    logits = torch.zeros(2, 2, requires_grad=True)
    losses = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    router_loss(torch.sigmoid(logits), comparative_signal(losses, losses.mean(0))).backward()
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] < 0  # descent raises these logits
    assert logits.grad[0, 1] > 0 and logits.grad[1, 0] > 0


def test_router_remembers_each_pairs_last_loss():
    router = Router(in_dim=4, n_students=2, hidden=8, n_paths=5)
    nan = float("nan")
    router.remember(torch.tensor([1, 3]), torch.tensor([[0.5, nan], [nan, 2.0]]))
    router.remember(torch.tensor([1]), torch.tensor([[nan, 1.5]]))
    table = router.last_loss
    assert table[1].tolist() == [0.5, 1.5] and table[3, 1] == 2.0
    assert torch.isnan(table[0]).all() and torch.isnan(table[3, 0])


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
    router = Router(in_dim=8, n_students=2, hidden=16, n_paths=1)
    opt = torch.optim.Adam(router.parameters(), lr=1e-2)
    centres = torch.randn(3, 8)
    gen = torch.Generator().manual_seed(0)
    steps = 300
    for step in range(steps):
        style = torch.randint(3, (32,), generator=gen)
        emb = centres[style] + 0.3 * torch.randn(32, 8, generator=gen)
        losses = base[style] + 0.2 * torch.randn(32, 2, generator=gen)
        probs = torch.sigmoid(router(emb) / tau_at(step, steps, 1.0, 0.3))
        loss = router_loss(probs, comparative_signal(losses, base.mean(0))) - 0.01 * entropy_regulariser(probs)
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


def test_router_parameters_get_a_nonzero_gradient_from_the_student_losses(tiny_students, paths_file, make_config):
    """Through the real objective with tiny students, once both students have a loss on the
    same paths; the entropy term is off, so the gradient can only come from the students' losses."""
    from qrdistill.training.data import build_data, collate
    from qrdistill.training.objective import QRDistillObjective
    from qrdistill.training.students import load_student

    cfg = make_config(lambda_entropy=0.0, peer__enabled=False)
    loaded = [load_student(s) for s in cfg.students]
    data = build_data(paths_file, cfg, {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)})
    model = QRDistillObjective([m for m, _ in loaded], cfg, embed_dim=8, n_paths=len(data))
    idx = list(range(6))
    inputs = [collate([data.encoded[s.name][i] for i in idx], tok.pad_token_id)
              for s, (_, tok) in zip(cfg.students, loaded)]
    kwargs = dict(items=torch.tensor(idx), chars=torch.ones(6), embeddings=torch.randn(6, 8),
                  noise=logistic_noise((6, 2), torch.Generator().manual_seed(0)), tau=1.0)
    model.router.remember(torch.tensor(idx), torch.rand(6, 2) + 1.0)  # as if every pair had been trained
    out = model(inputs, **kwargs)
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
