"""Resolve a model name and load it; apply a chat template the same way in every stage."""

from __future__ import annotations

from pathlib import Path

from qrdistill.models.packaged import PACKAGED_MODELS, packaged_model_path

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "auto": "auto"}


def resolve_model(name: str) -> str:
    """A packaged alias becomes its converted local folder; a folder or hub id is returned as is."""
    if name in PACKAGED_MODELS:
        return str(packaged_model_path(name))
    return name


def _torch_dtype(dtype: str):
    import torch

    if dtype not in _DTYPES:
        raise ValueError(f"dtype '{dtype}' is not supported; use one of {sorted(_DTYPES)}")
    value = _DTYPES[dtype]
    return value if value == "auto" else getattr(torch, value)


def load_tokenizer(name: str, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        # Padding positions are always masked out, so reusing EOS as pad is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, *, dtype: str = "float32", device: str | None = None,
                   trust_remote_code: bool = False, quantization_config=None):
    """Load (model, tokenizer). `name`: packaged alias, local folder or hub id."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    if not Path(path).exists() and "/" not in path:
        known = ", ".join(sorted(k for k, v in PACKAGED_MODELS.items() if v.kind == "causal_lm"))
        raise FileNotFoundError(
            f"model '{name}' is neither a local folder, a hub id (owner/name) nor a packaged alias ({known})"
        )
    kwargs = {"dtype": _torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if device:
        model.to(device)
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    return model, tokenizer


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, text: str, *, system: str | None = None) -> str:
    """The text a model sees for a user turn: its chat template when it has one, else plain text.

    Base models without a template get the text followed by a blank line, so the response starts
    on a line of its own. Training and generation both go through here, so the prompt a student
    is trained on is byte for byte the prompt it answers at evaluation.
    """
    if has_chat_template(tokenizer):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix = f"{system}\n\n" if system else ""
    return f"{prefix}{text}\n\n"
