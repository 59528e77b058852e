"""The precision and memory switches of a student (precision, gradient checkpointing, attention
implementation, torch.compile): each one takes effect on the loaded model, and a short training
run with it keeps finite losses within tolerance of the plain fp32 run (CPU, tiny students)."""

from __future__ import annotations

import math

import pytest
import torch

from qrdistill.errors import ConfigError
from qrdistill.training import train
from qrdistill.training.config import StudentConfig
from qrdistill.training.students import load_student
from qrdistill.utils.io import read_jsonl

STEPS = 3


def _student(tiny_students, **switches) -> StudentConfig:
    return StudentConfig(
        name="llama",
        model=str(tiny_students[0]),
        lr=1e-3,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
        **switches,
    )


def _losses(out) -> list[list[float]]:
    """Per step, the loss of each student."""
    return [[row["loss/llama"], row["loss/qwen"]] for row in read_jsonl(out / "metrics.jsonl")]


@pytest.fixture
def run(tmp_path, make_config, paths_file):
    """run(**switches): per-step losses of both tiny students trained STEPS steps with those
    switches on each (routing all, no peer: only the students' own losses); cached per test."""
    cache: dict = {}

    def go(**switches):
        key = tuple(sorted(switches.items()))
        if key not in cache:
            students = [dict(s.model_dump(), **switches) for s in make_config().students]
            cfg = make_config(
                max_steps=STEPS, routing__mode="all", peer__enabled=False, students=students
            )
            name = "-".join(f"{k}_{v}" for k, v in key) or "fp32"
            cache[key] = _losses(train(cfg, paths_file, tmp_path / name))
        return cache[key]

    return go


def _close(got, ref, rel: float) -> None:
    assert len(got) == len(ref) == STEPS
    for step_got, step_ref in zip(got, ref):
        for g, r in zip(step_got, step_ref):
            assert math.isfinite(g)
            assert abs(g - r) <= rel * abs(r), (got, ref)


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto is bf16 on CUDA")
def test_auto_precision_is_fp32_on_cpu(tiny_students):
    model, _ = load_student(_student(tiny_students))
    assert model.get_base_model().model.embed_tokens.weight.dtype == torch.float32
    assert not hasattr(model.forward, "qrdistill_autocast")


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_half_precision_loads_half_base_fp32_lora_and_trains_close_to_fp32(
    precision, dtype, tiny_students, run
):
    with pytest.warns(UserWarning, match="loss scaling") if precision == "fp16" else _nothing():
        model, _ = load_student(_student(tiny_students, precision=precision))
    q = model.get_base_model().model.layers[0].self_attn.q_proj
    assert q.base_layer.weight.dtype == dtype  # frozen base in half precision
    assert (
        q.lora_A["default"].weight.dtype == torch.float32
    )  # trained weights (and AdamW state) fp32
    assert model.forward.qrdistill_autocast == dtype
    ids = torch.randint(0, 100, (2, 12))
    assert model(input_ids=ids).logits.dtype == dtype  # the forward does run in half precision
    with pytest.warns(UserWarning) if precision == "fp16" else _nothing():
        _close(run(precision=precision), run(), rel=0.03)


def test_gradient_checkpointing_is_on_and_exact(tiny_students, run):
    model, _ = load_student(_student(tiny_students, gradient_checkpointing=True))
    assert model.is_gradient_checkpointing
    model.train()
    ids = torch.randint(0, 100, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    lora_b = model.get_base_model().model.layers[0].self_attn.q_proj.lora_B["default"].weight
    assert (
        lora_b.grad is not None and lora_b.grad.abs().sum() > 0
    )  # gradients reach the first layer
    _close(run(gradient_checkpointing=True), run(), rel=1e-4)  # recomputation changes nothing


def test_attention_implementation_default_explicit_and_missing_flash(tiny_students, run):
    model, _ = load_student(_student(tiny_students))
    assert model.config._attn_implementation == "sdpa"
    model, _ = load_student(_student(tiny_students, attn_implementation="eager"))
    assert model.config._attn_implementation == "eager"
    _close(run(attn_implementation="eager"), run(), rel=1e-4)
    from qrdistill.models.loading import flash_attention_available

    if not flash_attention_available()[0]:
        with pytest.raises(ConfigError, match="flash_attention_2 cannot run here"):
            load_student(_student(tiny_students, attn_implementation="flash_attention_2"))


def test_compile_wraps_the_student_in_place(tiny_students):
    model, _ = load_student(_student(tiny_students, compile=True))
    assert model._compiled_call_impl is not None  # Module.compile: in place, same parameter names
    assert not any("_orig_mod" in name for name, _ in model.named_parameters())


@pytest.mark.slow  # inductor compiles forward and backward on CPU: about 90 s on 2 cores
def test_compiled_students_train_close_to_eager(run):
    _close(run(compile=True), run(), rel=1e-3)


def test_the_old_dtype_key_says_what_replaced_it(tiny_students):
    with pytest.raises(ValueError, match="replaced by 'precision'"):
        StudentConfig(name="a", model=str(tiny_students[0]), dtype="bfloat16")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
