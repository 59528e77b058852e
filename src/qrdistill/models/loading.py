"""Resolve a model name and load it; apply a chat template the same way in every stage."""

from __future__ import annotations

from pathlib import Path

from qrdistill.errors import ConfigError
from qrdistill.models.artifacts import TrainedStudent, read_trained_student
from qrdistill.models.packaged import PACKAGED_MODELS, packaged_model_path

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "auto": "auto",
}


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


_PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def resolve_precision(precision: str, device: str | None = None):
    """torch dtype for a training precision: bf16 | fp16 | fp32, or auto = bf16 on a CUDA GPU that
    supports it, fp32 otherwise (CPU, MPS, pre-Ampere GPUs). `device`: the training device type
    ("cuda", "cpu", ...); default: CUDA when it is available."""
    import torch

    if precision == "auto":
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        use_bf16 = device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if use_bf16 else torch.float32
    if precision not in _PRECISIONS:
        raise ValueError(
            f"precision '{precision}' is not supported; use auto, {', '.join(_PRECISIONS)}"
        )
    return getattr(torch, _PRECISIONS[precision])


def flash_attention_available() -> tuple[bool, str]:
    """(usable, why not): flash-attn installed, importable by transformers, and a CUDA GPU."""
    import importlib.util

    import torch

    if importlib.util.find_spec("flash_attn") is None:
        return (
            False,
            "the flash-attn package is not installed (pip install flash-attn --no-build-isolation)",
        )
    if not torch.cuda.is_available():
        return False, "flash_attention_2 needs a CUDA GPU"
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        return (
            False,
            "transformers cannot use the installed flash-attn (version or GPU not supported)",
        )
    return True, ""


def resolve_attn_implementation(choice: str, dtype) -> str | None:
    """What to pass as `attn_implementation`: auto = flash_attention_2 when it can run (installed,
    CUDA, bf16/fp16), else None (transformers' default: sdpa where the model supports it).
    An explicit flash_attention_2 that cannot run raises ValueError saying why."""
    import torch

    if choice in ("sdpa", "eager"):
        return choice
    half = dtype in (torch.bfloat16, torch.float16)
    usable, why = flash_attention_available()
    if choice == "flash_attention_2":
        if not usable:
            raise ValueError(
                f"attn_implementation: flash_attention_2 cannot run here: {why}; "
                "use attn_implementation: auto or sdpa"
            )
        if not half:
            raise ValueError("attn_implementation: flash_attention_2 needs precision bf16 or fp16")
        return choice
    if choice != "auto":
        raise ValueError(
            f"attn_implementation '{choice}' is not supported; use auto, sdpa, "
            "flash_attention_2 or eager"
        )
    return "flash_attention_2" if usable and half else None


def four_bit_available() -> bool:
    """bitsandbytes 4-bit needs the package and a CUDA GPU."""
    import importlib.util

    import torch

    return importlib.util.find_spec("bitsandbytes") is not None and torch.cuda.is_available()


def nf4_config(compute_dtype):
    """The one 4-bit setting, used to train QLoRA students and to evaluate them as trained:
    NF4 with double quantization, matmuls in `compute_dtype`."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=_torch_dtype(compute_dtype)
        if isinstance(compute_dtype, str)
        else compute_dtype,
    )


def load_tokenizer(name: str, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    student = read_trained_student(name)
    if student is not None:  # a trained student speaks its base's tokenizer
        name, trust_remote_code = student.base, trust_remote_code or student.trust_remote_code

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model(name), trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None:
        # Padding positions are always masked out, so reusing EOS as pad is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name: str,
    *,
    dtype="float32",
    device: str | None = None,
    trust_remote_code: bool = False,
    quantization_config=None,
    attn_implementation: str | None = None,
):
    """Load (model, tokenizer). `name`: packaged alias, local folder, hub id, or a trained student's
    folder (base + LoRA adapter, see `artifacts.py`); `dtype`: a name (float32, bf16, ...) or a
    torch dtype; `attn_implementation`: None for transformers' default."""
    from transformers import AutoModelForCausalLM

    student = read_trained_student(name)
    if student is not None:
        return _load_trained_student(
            name,
            student,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
        )
    path = resolve_model(name)
    if not Path(path).exists() and "/" not in path:
        known = ", ".join(sorted(k for k, v in PACKAGED_MODELS.items() if v.kind == "causal_lm"))
        raise FileNotFoundError(
            f"model '{name}' is neither a local folder, a hub id (owner/name) nor a packaged alias ({known})"
        )
    kwargs = {
        "dtype": dtype if not isinstance(dtype, str) else _torch_dtype(dtype),
        "trust_remote_code": trust_remote_code,
    }
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if device and quantization_config is None:  # bitsandbytes places quantized weights itself
        model.to(device)
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _load_trained_student(
    folder: str,
    student: TrainedStudent,
    *,
    dtype,
    device: str | None,
    trust_remote_code: bool,
    attn_implementation: str | None,
):
    """Base + adapter, as trained: a student trained on a 4-bit base gets the same 4-bit base
    (NF4, its training compute dtype); any other base is loaded in `dtype`. Not merged."""
    quant = None
    if student.load_in_4bit:
        if not four_bit_available():
            raise ConfigError(
                f"{folder}: this student was trained on a 4-bit base, which needs bitsandbytes "
                "and a CUDA GPU to load as trained (pip install 'qrdistill[gpu]'); elsewhere, "
                "write a merged copy with `qrdistill export RUN --method M --merge` and use its folder"
            )
        quant = nf4_config(student.dtype or "bfloat16")
        dtype = student.dtype or "bfloat16"
    model, tokenizer = load_causal_lm(
        student.base,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code or student.trust_remote_code,
        quantization_config=quant,
        attn_implementation=attn_implementation,
    )
    if student.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, folder)
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
            {"role": "user", "content": text}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return plain_prompt(text, system=system)


def plain_prompt(text: str, *, system: str | None = None) -> str:
    """A user turn without any chat template: the text followed by a blank line, so that the
    response starts on a line of its own. No special tokens: the engines add none either."""
    prefix = f"{system}\n\n" if system else ""
    return f"{prefix}{text}\n\n"
