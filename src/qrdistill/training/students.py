"""Loading a student: any HF causal LM, LoRA through peft, 4-bit QLoRA when bitsandbytes and CUDA
are there, or frozen (forward only).

The precision and memory switches of `StudentConfig` all take effect here, at load time, so the
training loop needs to know nothing about them:
- precision bf16/fp16: the frozen base weights are loaded in that type; LoRA weights stay fp32
  (peft's default upcast), so AdamW keeps full-precision state; the student's forward runs under
  `torch.autocast` of that type (as accelerate's mixed precision does), so the LoRA matmuls use
  the fast path too. The loss is computed from `.float()` logits by the objective. fp16 has no
  loss scaling unless the run is launched with `accelerate launch --mixed_precision fp16`.
- gradient checkpointing: transformers' own, non-reentrant (works with frozen inputs and peft).
- attention: `attn_implementation` passed to `from_pretrained` (see `resolve_attn_implementation`).
- compile: `Module.compile()` in place, so parameter names (checkpoints, export) do not change.
"""

from __future__ import annotations

import functools
import warnings

from qrdistill.errors import ConfigError
from qrdistill.models import load_causal_lm
from qrdistill.models.artifacts import read_trained_student
from qrdistill.models.loading import (
    four_bit_available,
    nf4_config,
    resolve_attn_implementation,
    resolve_precision,
)
from qrdistill.training.config import StudentConfig


def _quantization_config(cfg: StudentConfig, dtype):
    if not cfg.load_in_4bit:
        return None
    if not four_bit_available():
        raise ConfigError(
            f"student '{cfg.name}': load_in_4bit needs bitsandbytes and a CUDA GPU "
            "(pip install 'qrdistill[gpu]'); set load_in_4bit: false to train in "
            f"precision {cfg.precision}"
        )
    return nf4_config(dtype)


def _input_device(args, kwargs) -> str:
    import torch

    for value in (*kwargs.values(), *args):
        if torch.is_tensor(value):
            return value.device.type
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast_forward(model, dtype) -> None:
    """Run `model`'s forward under torch.autocast(dtype) on whatever device its inputs are on.
    The same wrapping accelerate applies for mixed precision, here per student."""
    import torch

    forward = model.forward

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        with torch.autocast(device_type=_input_device(args, kwargs), dtype=dtype):
            return forward(*args, **kwargs)

    wrapped.qrdistill_autocast = dtype
    model.forward = wrapped


def _enable_checkpointing(model, kwargs: dict) -> None:
    """transformers >= 5 calls it activation checkpointing (the old name warns); 4.x does not."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()  # only needed when reentrant; harmless otherwise


def load_student(cfg: StudentConfig):
    """(model, tokenizer). A frozen student has no trainable parameter; others get LoRA adapters.
    The precision, gradient checkpointing, attention and compile switches are applied here."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if read_trained_student(cfg.model) is not None:
        raise ConfigError(
            f"student '{cfg.name}': model {cfg.model} is a trained student's adapter folder; "
            "train on its merged copy (qrdistill export RUN --method M --merge) instead"
        )
    dtype = resolve_precision(cfg.precision)
    try:
        attn = resolve_attn_implementation(cfg.attn_implementation, dtype)
    except ValueError as err:
        raise ConfigError(f"student '{cfg.name}': {err}") from None
    if dtype == torch.float16 and not cfg.frozen:
        warnings.warn(
            f"student '{cfg.name}': precision fp16 trains without loss scaling unless the run is "
            "launched with `accelerate launch --mixed_precision fp16`; bf16 needs none",
            stacklevel=2,
        )
    quant = _quantization_config(cfg, dtype)
    model, tokenizer = load_causal_lm(
        cfg.model,
        dtype=dtype,
        trust_remote_code=cfg.trust_remote_code,
        quantization_config=quant,
        attn_implementation=attn,
    )
    if cfg.frozen:
        model.requires_grad_(False)
    else:
        checkpointing = {"use_reentrant": False}
        if quant is not None:
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs=checkpointing,
            )
        elif cfg.gradient_checkpointing:
            _enable_checkpointing(model, checkpointing)
        if cfg.gradient_checkpointing:
            model.config.use_cache = False
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)  # LoRA weights in fp32 (peft's autocast_adapter_dtype)
    if dtype != torch.float32:
        autocast_forward(model, dtype)
    if cfg.compile:
        model.compile()
    return model, tokenizer
