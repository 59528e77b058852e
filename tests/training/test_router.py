"""The router: gates decided in one place for every mode, a signal that measures fit rather than
difficulty or a student's level, a closed-form fit with standard errors, and decisions from
evidence only: undecided under a null, decided under a moderate plant, reversed when it is."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch
from pydantic import ValidationError

from qrdistill.training import router as router_mod
from qrdistill.training.config import RoutingConfig, TrainConfig
from qrdistill.training.router import (
    Router,
    decide_gates,
    entropy_regulariser,
    gate_scores,
    logistic_noise,
    no_preference_band,
    row_centred,
    step_draws,
    tau_at,
)


def _noise(n: int, s: int, seed: int = 0) -> torch.Tensor:
    return logistic_noise((n, s), torch.Generator().manual_seed(seed))


def test_free_gates_open_with_exactly_the_router_probability_without_top_up_or_exploration():
    scores = torch.tensor([[-2.0, 0.0, 1.5]]).expand(20_000, 3)
    gates = decide_gates(
        scores,
        _noise(20_000, 3),
        torch.zeros(20_000, dtype=torch.bool),
        students_per_path=None,
        min_students=0,
    )
    assert set(gates.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(gates.mean(0), torch.sigmoid(scores[0]), atol=0.01)


def test_top_up_and_exploration_raise_the_open_rate_above_p():
    """docs/METHOD.md: with 2 students at p = 1/2 and a top-up to 1 the open rate is 0.625, and
    an exploration share e makes it e + (1 - e) * 0.625."""
    n = 40_000
    none = torch.zeros(n, dtype=torch.bool)
    gates = decide_gates(
        torch.zeros(n, 2), _noise(n, 2), none, students_per_path=None, min_students=1
    )
    assert abs(float(gates.mean()) - 0.625) < 0.01
    explore = torch.rand(n, generator=torch.Generator().manual_seed(1)) < 0.2
    gates = decide_gates(
        torch.zeros(n, 2), _noise(n, 2), explore, students_per_path=None, min_students=1
    )
    assert abs(float(gates.mean()) - (0.2 + 0.8 * 0.625)) < 0.01


def test_every_path_reaches_at_least_min_students_and_top_up_takes_the_highest_scores():
    scores = torch.full((500, 3), -4.0)  # left alone, almost every path would reach nobody
    noise = _noise(500, 3, seed=1)
    none = torch.zeros(500, dtype=torch.bool)
    gates = decide_gates(scores, noise, none, students_per_path=None, min_students=0)
    assert (gates.sum(1) == 0).float().mean() > 0.9
    for k in (1, 2, 3):
        gates = decide_gates(scores, noise, none, students_per_path=None, min_students=k)
        assert (gates.sum(1) >= k).all()
    gates = decide_gates(
        torch.tensor([[-5.0, -1.0, -9.0]]),
        torch.zeros(1, 3),
        torch.zeros(1, dtype=torch.bool),
        students_per_path=None,
        min_students=1,
    )
    assert gates.tolist() == [[0.0, 1.0, 0.0]]


def test_a_budget_gives_exactly_k_students_by_evidence_at_random_without_and_explored_paths_all():
    n = 20_000
    explore = torch.arange(n) % 5 == 0
    for k in (1, 2):
        gates = decide_gates(
            torch.zeros(n, 3), _noise(n, 3), explore, students_per_path=k, min_students=0
        )
        assert (gates[explore] == 1).all() and (gates[~explore].sum(1) == k).all()
        # No evidence: each student gets k/3 of the unexplored paths.
        assert torch.allclose(gates[~explore].mean(0), torch.full((3,), k / 3), atol=0.02)
    scores = torch.tensor([[4.0, -4.0, 0.0]]).expand(n, 3)  # strong evidence for student 0
    gates = decide_gates(scores, _noise(n, 3), explore, students_per_path=1, min_students=0)
    assert gates[~explore, 0].mean() > 0.9


def test_routing_draws_are_a_function_of_seed_and_step_with_the_configured_exploration_share():
    a, b = step_draws(3, 17, 1000, 2, 0.3), step_draws(3, 17, 1000, 2, 0.3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], step_draws(3, 18, 1000, 2, 0.3)[0])
    assert abs(float(a[1].float().mean()) - 0.3) < 0.05
    assert not step_draws(3, 17, 1000, 2, 0.0)[1].any()


def test_centred_losses_remove_path_difficulty_and_use_only_paths_several_students_computed():
    nan = float("nan")
    losses = torch.tensor([[1.0, 2.0, nan], [3.0, nan, nan], [2.0, 1.0, 4.0], [nan, nan, nan]])
    c = row_centred(losses)
    assert torch.isnan(c[1]).all() and torch.isnan(c[3]).all() and torch.isnan(c[0, 2])
    assert c[0].tolist()[:2] == [-0.5, 0.5]
    assert torch.allclose(
        row_centred(losses + torch.tensor([[5.0], [1.0], [-2.0], [0.0]]))[0], c[0], equal_nan=True
    )


def _clusters(seed: int, n: int = 300, styles: int = 6, dim: int = 32):
    """Path embeddings in style clusters (unit norm, like a sentence encoder's) and each path's
    style."""
    gen = torch.Generator().manual_seed(seed)
    style = torch.arange(n) % styles
    emb = torch.randn(styles, dim, generator=gen)[style] + 0.5 * torch.randn(n, dim, generator=gen)
    return emb / emb.norm(dim=1, keepdim=True), style, gen


def _router(emb: torch.Tensor, n_students: int = 2) -> Router:
    d = RoutingConfig()
    return Router(emb, n_students, components=d.components, prior=d.prior, forget=d.forget)


def test_the_fit_removes_a_students_level_and_finds_the_interaction_with_shrinking_errors():
    emb, style, gen = _clusters(0)
    router = _router(emb)
    # Student 1 is 0.5 worse everywhere (another tokenizer, less trained); style 0 suits student 0.
    truth = torch.zeros(300, 2)
    truth[:, 1] += 0.5
    truth[style == 0, 0] -= 0.3
    se_before = None
    for step in range(60):
        rows = torch.randint(300, (8,), generator=gen)
        losses = truth[rows] + 0.1 * torch.randn(8, 2, generator=gen)
        router.observe(emb[rows], row_centred(losses))
        if step == 20:
            se_before = router(emb)[1]
    advantage, se = router(emb)
    planted = advantage[style == 0]
    # c = (L0 - L1) / 2, so the planted interaction is -0.15 for student 0, less its share of the
    # mean over all paths (1/6): -0.125; the other styles about +0.025.
    assert torch.allclose(planted[:, 0].mean(), torch.tensor(-0.125), atol=0.03)
    assert torch.allclose(advantage.sum(1), torch.zeros(300), atol=1e-5)
    assert advantage[style != 0, 0].abs().mean() < 0.05  # the level is not an advantage
    assert (se < se_before).all()
    assert ((planted[:, 0] / se[style == 0, 0]) < -3).float().mean() > 0.9


def test_gate_scores_stay_at_half_within_the_margin_and_grow_with_the_evidence_beyond():
    advantage = torch.tensor([[0.1, -0.1], [-0.5, 0.5], [1.0, -1.0]])
    se = torch.full((3, 2), 0.1)
    scores = gate_scores(advantage, se, margin=3.0, tau=0.5)
    assert (scores[0] == 0).all()  # t = 1: no preference
    assert scores[1, 0] == 4.0 and scores[1, 1] == -4.0  # t = -5: (5 - 3) / 0.5 for student 0
    assert scores[2, 1] > scores[1, 0]


@contextmanager
def _one_thread():
    """The simulations run hundreds of steps on tensors of a few dozen numbers, where worker
    threads only add synchronisation (an order of magnitude slower on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _simulate(seed: int, interaction: float) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """The router alone, as the Recipe drives it, at the default settings but an exploration share
    of 1/2 (the evidence that 300 paths x 3 epochs need at this plant; docs/METHOD.md). 300 paths
    in 6 style clusters, batch 4, 3 epochs. Each loss: path difficulty + a student level that
    differs and drifts at a different rate per student (one trains faster) + per-pair noise sd 0.3
    per step, and, for style 0, `interaction` nats less for student 0. Returns the last epoch's
    mean gate probability per (style, student), |p - 1/2| over its gates, the share of paths per
    epoch that reached both students, and the shadow router's mean gate probability per (style,
    student): the same evidence with paths and losses paired at random, as the objective does."""
    cfg = RoutingConfig(exploration_share=0.5)
    emb, style, gen = _clusters(seed)
    router, shadow = _router(emb), _router(emb)
    difficulty = 0.5 + 1.5 * torch.rand(300, generator=gen)
    planted = torch.zeros(300, 2)
    planted[style == 0, 0] = -interaction
    batch, epochs = 4, 3
    total = epochs * math.ceil(300 / batch)
    step, shared = 0, []
    for _ in range(epochs):
        probs, shadow_probs = torch.zeros(300, 2), torch.zeros(300, 2)
        reached = 0
        order = torch.randperm(300, generator=gen)
        for start in range(0, 300, batch):
            rows = order[start : start + batch]
            tau = tau_at(step, total, cfg.tau_start, cfg.tau_end)
            noise, explore = step_draws(seed, step, len(rows), 2, cfg.exploration_share)
            advantage, se = router(emb[rows])
            scores = gate_scores(advantage, se, cfg.margin, tau)
            gates = decide_gates(
                scores,
                noise,
                explore,
                students_per_path=None,
                min_students=cfg.min_students_per_path,
            )
            level = torch.tensor([0.3 - 0.4 * step / total, -0.1 * step / total])
            losses = (
                difficulty[rows, None]
                + level
                + planted[rows]
                + 0.3 * torch.randn(len(rows), 2, generator=gen)
            )
            centred = row_centred(torch.where(gates > 0, losses, torch.nan))
            shadow_probs[rows] = torch.sigmoid(gate_scores(*shadow(emb[rows]), cfg.margin, tau))
            router.observe(emb[rows], centred)
            shadow.observe(emb[rows[noise[:, 0].argsort()]], centred)  # as the objective does
            probs[rows] = torch.sigmoid(scores)
            reached += int((gates.sum(1) >= 2).sum())
            step += 1
        shared.append(reached / 300)
    per_style = torch.stack([probs[style == a].mean(0) for a in range(6)])
    shadow_style = torch.stack([shadow_probs[style == a].mean(0) for a in range(6)])
    return per_style, (probs - 0.5).abs().mean(), shared, shadow_style


def test_null_zero_mean_signal_with_clustered_embeddings_stays_undecided_in_every_seed():
    for seed in range(6):
        with _one_thread():
            per_style, spread, shared, _ = _simulate(seed, 0.0)
        assert spread <= 0.1, seed
        assert (per_style[:, 0] - per_style[:, 1]).abs().max() <= 0.15, (seed, per_style)
        assert min(shared) >= 0.5  # the exploration share keeps the evidence coming


@pytest.mark.parametrize("interaction", [0.3, -0.3], ids=["plant", "reversed"])
def test_a_moderate_plant_is_routed_the_right_way_and_a_reversed_one_the_other_way(interaction):
    """The null twin above: same router, settings and seeds, no interaction."""
    with _one_thread():
        runs = [_simulate(seed, interaction) for seed in range(10)]
    gaps = [float(per_style[0, 0] - per_style[0, 1]) for per_style, _, _, _ in runs]
    right = [g * math.copysign(1, interaction) >= 0.3 for g in gaps]
    assert sum(right) >= 9, gaps
    # The shadow router, fed the same evidence with paths and losses paired at random, stays
    # undecided: its spread is the null band that routing.jsonl tests preferences against.
    for _, _, _, shadow in runs:
        assert (shadow[:, 0] - shadow[:, 1]).abs().max() <= 0.15, shadow


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


def _objective(cfg, paths_file, n_paths: int = 6):
    from qrdistill.training.data import build_data, collate
    from qrdistill.training.objective import QRDistillObjective
    from qrdistill.training.students import load_student

    torch.manual_seed(0)
    loaded = [load_student(s) for s in cfg.students]
    data = build_data(paths_file, cfg, {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)})
    model = QRDistillObjective([m for m, _ in loaded], cfg, torch.randn(n_paths, 8))
    model.eval()  # no dropout: the same paths give the same losses in every call
    inputs = [
        collate([data.encoded[s.name][i] for i in range(n_paths)], tok.pad_token_id)
        for s, (_, tok) in zip(cfg.students, loaded)
    ]
    return model, inputs


def test_every_routing_mode_decides_its_gates_in_the_objective_from_the_same_draws(
    tiny_students, paths_file, make_config
):
    """A learned router without evidence routes exactly as random routing does on the same
    draws; `all` opens every gate; the exploration share opens every gate of its paths."""
    noise, explore = step_draws(0, 5, 6, 2, 0.2)
    gates = {}
    for mode in ("learned", "random", "all"):
        model, inputs = _objective(make_config(routing__mode=mode, peer__enabled=False), paths_file)
        out = model(
            inputs,
            chars=torch.full((6,), 40.0),
            embeddings=torch.randn(6, 8),
            noise=noise,
            explore=explore,
            tau=0.5,
        )
        gates[mode] = out.gates
    assert torch.equal(gates["learned"], gates["random"])
    assert (gates["all"] == 1).all() and (gates["random"][explore] == 1).all()
    assert (gates["random"].sum(1) >= 1).all() and not (gates["random"] == 1).all()


def test_a_paths_weight_in_distill_does_not_depend_on_the_routing(
    tiny_students, paths_file, make_config
):
    model, inputs = _objective(make_config(routing__mode="random", peer__enabled=False), paths_file)
    for gates in (torch.ones(6, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]] * 2)):
        out = model(inputs, chars=torch.full((6,), 40.0), fixed_gates=gates)
        # Each computed (path, student) loss enters with weight 1/B, routed to one student or two.
        assert torch.allclose(out.terms["distill"], out.per_path.nansum() / 6)


def test_the_router_learns_from_the_students_losses_through_the_objective(
    tiny_students, paths_file, make_config
):
    model, inputs = _objective(make_config(peer__enabled=False), paths_file)
    kwargs = {"chars": torch.full((6,), 40.0), "embeddings": torch.randn(6, 8), "tau": 1.0}
    model(inputs, fixed_gates=torch.ones(6, 2), **kwargs)
    assert model.router.residual[1] == 0  # imposed gates teach the router nothing
    noise, _ = step_draws(0, 0, 6, 2, 0.0)
    out = model(inputs, noise=noise, explore=torch.ones(6, dtype=torch.bool), **kwargs)
    assert (out.gates == 1).all()
    assert model.router.residual[1] == 12  # every pair of every (shared) path
    assert model.router.gram[0, 0, 0] == 6 and model.router.moment.abs().sum() > 0


def test_routing_settings_are_checked_with_clear_errors(make_config):
    with pytest.raises(ValidationError, match="students_per_path is 3 but there are only 2"):
        make_config(routing__students_per_path=3)
    with pytest.raises(ValidationError, match="exclude each other"):
        make_config(routing__students_per_path=1, routing__min_students_per_path=1)
    with pytest.raises(ValidationError, match="closed form"):
        make_config(routing__hidden=16)
    with pytest.raises(ValidationError):
        make_config(routing__exploration_share=1.5)
    assert make_config(routing__students_per_path=1).routing.students_per_path == 1
    assert isinstance(make_config(), TrainConfig)


def test_fewer_paths_than_components_keep_only_the_directions_the_paths_span():
    emb = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    router = _router(emb)
    assert router.basis.shape == (16, 2)  # 3 paths span 2 directions around their mean
    assert router.features(emb)[:, 1:].abs().max() < 10  # whitened, not blown up


@pytest.mark.parametrize("seed", range(4))
def test_paths_with_identical_embeddings_give_a_basis_of_the_distinct_ones(seed):
    """Paths with identical texts (a tiny run, repeated answers) give a covariance with hundreds
    of equal zero eigenvalues (float32 `eigh` failed to converge on some): the basis spans exactly
    the distinct paths' directions, and none when every text is the same."""
    g = torch.Generator().manual_seed(seed)
    distinct = torch.nn.functional.normalize(torch.randn(3, 384, generator=g), dim=1)
    emb = distinct[torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])]
    router = _router(emb)
    assert router.basis.shape == (384, 2)  # 3 distinct paths span 2 directions around their mean
    feats = router.features(emb)[:, 1:]
    assert torch.allclose(feats[0], feats[3], atol=1e-5)  # the same text, the same features
    assert torch.allclose(feats.var(0), torch.ones(2), atol=1e-4)  # whitened over the 8 paths

    same = _router(distinct[:1].repeat(5, 1))  # float32 eigh failed on seeds 0, 1 and 3
    assert same.basis.shape == (384, 0)
    assert torch.equal(same.features(distinct), torch.ones(3, 1))  # the intercept alone
