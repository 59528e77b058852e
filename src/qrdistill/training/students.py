"""Loading a student: any HF causal LM, LoRA through peft, 4-bit QLoRA when bitsandbytes and CUDA
are there, or frozen (forward only)."""

from __future__ import annotations

import importlib.util

from qrdistill.models import load_causal_lm
from qrdistill.training.config import StudentConfig
from qrdistill.utils.config import ConfigError


def _quantization_config(cfg: StudentConfig):
    import torch

    if not cfg.load_in_4bit:
        return None
    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        raise ConfigError(f"student '{cfg.name}': load_in_4bit needs bitsandbytes and a CUDA GPU "
                          "(pip install 'qrdistill[gpu]'); set load_in_4bit: false to train in "
                          f"{cfg.dtype}")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=getattr(torch, cfg.dtype))


def load_student(cfg: StudentConfig):
    """(model, tokenizer). A frozen student has no trainable parameter; others get LoRA adapters."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    quant = _quantization_config(cfg)
    model, tokenizer = load_causal_lm(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code,
                                      quantization_config=quant)
    if cfg.frozen:
        model.requires_grad_(False)
        return model, tokenizer
    if quant is not None:
        model = prepare_model_for_kbit_training(model)
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, lora), tokenizer
