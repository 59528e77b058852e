"""Routing end to end on tiny students, through the real Recipe and objective: a zero gate costs a
student nothing, and the router learns a signal the students themselves produce."""

from __future__ import annotations

import pytest
import torch
from training_paths import make_paths

from qrdistill.training import train
from qrdistill.training.data import TrainItem, build_data, collate, encode
from qrdistill.training.objective import QRDistillObjective
from qrdistill.training.students import load_student
from qrdistill.utils.io import read_jsonl, write_jsonl

PLANTED = "program"


def _objective(cfg, paths_file):
    loaded = [load_student(s) for s in cfg.students]
    toks = {s.name: tok for s, (_, tok) in zip(cfg.students, loaded)}
    data = build_data(paths_file, cfg, toks)
    return QRDistillObjective([m for m, _ in loaded], cfg, None), data, toks


def _step(model, data, toks, rows, gates):
    inputs = [
        collate([data.encoded[name][i] for i in rows], tok.pad_token_id)
        for name, tok in toks.items()
    ]
    out = model(inputs, chars=torch.full((len(rows),), 40.0), fixed_gates=gates)
    return out, inputs


def _lora_grads(student) -> dict[str, torch.Tensor | None]:
    return {
        n: (None if p.grad is None else p.grad.clone())
        for n, p in student.named_parameters()
        if p.requires_grad
    }


def test_a_zero_gate_costs_the_student_no_compute_and_exactly_zero_gradient(
    tiny_students, paths_file, make_config
):
    cfg = make_config(routing__mode="random", peer__enabled=False)
    model, data, toks = _objective(cfg, paths_file)
    model.eval()  # no dropout, so the two runs below compute the same numbers
    seen: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
    for s, student in enumerate(model.students):
        student.register_forward_pre_hook(
            lambda mod, args, kwargs, s=s: seen[s].append(tuple(kwargs["input_ids"].shape)),
            with_kwargs=True,
        )

    rows = [0, 1, 2, 3]
    gates = torch.tensor(
        [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]
    )  # qwen computes paths 0 and 2
    out, inputs = _step(model, data, toks, rows, gates)
    out.loss.backward()
    sparse = _lora_grads(model.students[1])
    # qwen's forward (and so its backward) saw exactly its two routed rows, trimmed to their length.
    routed_width = int(inputs[1]["attention_mask"][[0, 2]].sum(1).max())
    assert seen[1] == [(2, routed_width)] and seen[0] == [(4, inputs[0]["input_ids"].shape[1])]
    assert out.tokens.tolist() == [
        int(inputs[0]["attention_mask"].sum()),
        int(inputs[1]["attention_mask"][[0, 2]].sum()),
    ]
    assert torch.isnan(out.per_path[[1, 3], 1]).all() and not torch.isnan(out.per_path[:, 0]).any()

    # The gradient qwen got equals the one from a batch of its routed rows alone: paths 1 and 3
    # contributed exactly zero. A path weighs 1/B in either batch, so the 2-path batch's
    # gradient is twice the 4-path one's.
    model.zero_grad(set_to_none=True)
    alone, _ = _step(model, data, toks, [0, 2], torch.ones(2, 2))
    alone.loss.backward()
    for name, grad in _lora_grads(model.students[1]).items():
        assert torch.allclose(2 * sparse[name], grad, rtol=1e-5, atol=1e-7), name

    # A student with no routed row in a micro-batch runs nothing and gets no gradient at all.
    model.zero_grad(set_to_none=True)
    seen[1].clear()
    out, _ = _step(model, data, toks, rows, torch.tensor([[1.0, 0.0]] * 4))
    out.loss.backward()
    assert seen[1] == [] and out.tokens[1] == 0
    assert all(g is None for g in _lora_grads(model.students[1]).values())

    # Sharded training (FSDP/DeepSpeed) needs every rank in every student's forward: the idle
    # student then runs one row, gets exactly zero gradient, and the step's figures are unchanged.
    model.zero_grad(set_to_none=True)
    seen[1].clear()
    model.every_rank_runs_every_student = True
    joined, _ = _step(model, data, toks, rows, torch.tensor([[1.0, 0.0]] * 4))
    joined.loss.backward()
    assert len(seen[1]) == 1 and seen[1][0][0] == 1
    assert joined.tokens.tolist() == out.tokens.tolist() and torch.equal(joined.loss, out.loss)
    assert torch.isnan(joined.per_path[:, 1]).all()
    assert all(g is not None and not g.any() for g in _lora_grads(model.students[1]).values())


def _teach_planted_style(base, out_dir, paths, steps: int = 80):
    """A copy of `base` that has already learned the planted style's paths (full fine-tuning):
    the signal the router must find is produced by the students themselves."""
    from transformers import AutoModelForCausalLM

    from qrdistill.models import load_tokenizer

    tok = load_tokenizer(str(base))
    model = AutoModelForCausalLM.from_pretrained(base)
    items = [
        TrainItem(p.id, p.question_id, p.style, "path", p.prompt, p.text, p.text)
        for p in paths
        if p.style == PLANTED
    ]
    batch = collate(
        [encode(tok, item, 128, "truncate_prompt")[0] for item in items], tok.pad_token_id
    )
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def planted(tiny_students, tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    paths = make_paths(16)  # 16 questions x 3 styles
    write_jsonl(root / "paths.jsonl", paths)
    knows = _teach_planted_style(tiny_students[0], root / "knows_program", paths)
    return root / "paths.jsonl", knows


def _planted_run(make_config, planted, tmp_path, **overrides):
    paths_file, knows = planted
    cfg = make_config(epochs=10, batch_size=16, **overrides)
    cfg.students[0].model = str(knows)
    out = train(cfg, paths_file, tmp_path / cfg.routing.mode)
    return read_jsonl(out / "routing.jsonl")


def _planted_gap(routing: list[dict], epochs: set[int]) -> float:
    """Share of the planted style's paths routed to the student that knows it, minus the share
    routed to the other, over the given epochs."""
    cells = [r for r in routing if r["style"] == PLANTED and r["epoch"] in epochs]
    share = {
        s: sum(r["count"] for r in cells if r["student"] == s)
        / sum(r["total"] for r in cells if r["student"] == s)
        for s in ("llama", "qwen")
    }
    return share["llama"] - share["qwen"]


def test_router_sends_the_planted_style_to_the_student_that_knows_it(
    make_config, planted, tmp_path
):
    routing = _planted_run(make_config, planted, tmp_path)
    last = max(r["epoch"] for r in routing)
    assert _planted_gap(routing, {last}) >= 0.3
    assert all(r["unrouted_share"] == 0 for r in routing)
    planted_cells = [r for r in routing if r["style"] == PLANTED and r["epoch"] == last]
    assert any(r["outside_band"] for r in planted_cells)  # a preference, not noise
    # ... that shows in both halves of the questions, leaning towards the student that knows it.
    knows = next(r for r in planted_cells if r["student"] == "llama")
    assert all(lean > 0 for lean in knows["half_leans"])


def test_random_routing_shows_no_preference_on_the_same_data(make_config, planted, tmp_path):
    """Without a preference the gap is binomial noise: with 16 planted paths an epoch its sd is
    about 0.17, so it is measured over all 10 epochs (160 decisions a student, sd about 0.06)."""
    routing = _planted_run(make_config, planted, tmp_path, routing__mode="random")
    assert abs(_planted_gap(routing, {r["epoch"] for r in routing})) <= 0.15
    assert all(r["unrouted_share"] == 0 for r in routing)


def test_learned_routing_stays_undecided_when_the_students_cannot_differ_in_fit(
    make_config, planted, tmp_path
):
    """The null twin of the planted run above (same data, router and settings): both students are
    the same untaught model with attention dropout, effectively not updated (lr 1e-9), so their
    per-path losses differ only by zero-mean noise. No style may move its mean gate probability
    away from 1/2. (Students that do train make their own differences: one that happened to get
    more of a style's paths becomes better at them, and then the evidence is real.)"""
    from transformers import AutoModelForCausalLM

    from qrdistill.models import load_tokenizer

    paths_file, _ = planted
    cfg = make_config(epochs=10, batch_size=16)
    noisy = tmp_path / "noisy"
    model = AutoModelForCausalLM.from_pretrained(cfg.students[0].model)
    model.config.attention_dropout = 0.2
    model.save_pretrained(noisy)
    load_tokenizer(cfg.students[0].model).save_pretrained(noisy)
    for student in cfg.students:
        student.model, student.lr = str(noisy), 1e-9
    out = train(cfg, paths_file, tmp_path / "null")
    metrics = read_jsonl(out / "metrics.jsonl")
    assert any(r["router"] > 0 for r in metrics)  # the losses did differ, by noise
    routing = read_jsonl(out / "routing.jsonl")
    assert all(abs(r["mean_prob"] - 0.5) <= 0.075 for r in routing), [
        (r["epoch"], r["style"], r["student"], r["mean_prob"]) for r in routing
    ]
    assert not any(r["outside_band"] for r in routing)  # the report draws no preference
    assert all(r["unrouted_share"] == 0 for r in routing)
