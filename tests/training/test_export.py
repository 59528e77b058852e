"""Trained students on disk: the adapter folder, loading it as trained, merging on request.

No 4-bit path runs on this CPU machine (bitsandbytes needs CUDA), so the 4-bit cases run the
real code on a student whose record says it was trained on a 4-bit base: merging reloads that
base unquantized in bf16 (fully real), and loading it for evaluation either refuses with a clear
error (real) or asks transformers for the NF4 base (checked with a spy; no GPU here)."""

from __future__ import annotations

import stat

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from qrdistill.errors import ConfigError
from qrdistill.models import load_causal_lm, load_tokenizer
from qrdistill.models.artifacts import read_trained_student
from qrdistill.training.config import StudentConfig
from qrdistill.training.export import merge_dtype, merge_student, save_student
from qrdistill.training.students import load_student
from qrdistill.utils.io import current_umask, read_json

TEXT = "Question: what is 3 + 5? The answer is \\boxed{8}."


def _lora_student(base, tmp_path, dtype=torch.float32, configured=None, **cfg):
    """A LoRA student of `base` with random (non-zero) adapter weights, saved as training does;
    `configured`: the base as the config names it (a packaged alias, a relative folder)."""
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    torch.manual_seed(0)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = get_peft_model(model, lora)
    cfg = StudentConfig(name="s", model=configured or str(base), **cfg)
    return save_student(model, cfg, dtype, tmp_path / "students" / "s"), model


def _logits(model, tokenizer):
    ids = tokenizer([TEXT], return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits.float()


def test_merged_folder_gives_the_adapter_models_logits(tiny_students, tmp_path):
    folder, _ = _lora_student(tiny_students[0], tmp_path)
    adapter_model, tokenizer = load_causal_lm(str(folder))  # base + adapter, as evaluation loads it
    merged_dir = merge_student(folder, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)  # plain transformers, no peft
    assert not any("lora" in k for k in merged.state_dict())
    assert merged.dtype == torch.float32  # auto: the dtype it was trained in
    base = AutoModelForCausalLM.from_pretrained(tiny_students[0])
    expected = _logits(adapter_model, tokenizer)
    torch.testing.assert_close(_logits(merged, tokenizer), expected, atol=1e-5, rtol=1e-5)
    assert (_logits(base, tokenizer) - expected).abs().max() > 1e-3  # the adapter does something
    assert load_tokenizer(str(merged_dir)).get_vocab() == tokenizer.get_vocab()
    # Written with the user's umask (safetensors alone writes 0o600).
    mode = 0o666 & ~current_umask()
    files = [p for d in (folder, merged_dir) for p in d.iterdir()]
    assert {p.name for p in files} >= {"adapter_model.safetensors", "model.safetensors"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {mode}


def test_merging_a_4bit_trained_student_reloads_its_base_in_bf16_never_quantized(
    tiny_students, tmp_path
):
    folder, _ = _lora_student(tiny_students[0], tmp_path, torch.bfloat16, load_in_4bit=True)
    record = read_trained_student(folder)
    assert record.load_in_4bit and record.dtype == "bfloat16"
    assert merge_dtype(record) == "bfloat16"
    assert merge_dtype(record.model_copy(update={"dtype": "float32"})) == "bfloat16"
    assert merge_dtype(record, "fp32") == "float32"
    merged_dir = merge_student(folder, tmp_path / "merged")
    config = read_json(merged_dir / "config.json")
    assert "quantization_config" not in config
    weights = load_file(merged_dir / "model.safetensors")
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}
    assert not any("lora" in k or "absmax" in k or "quant" in k for k in weights)
    # The merge holds the LoRA update: it matches the bf16 base + adapter within bf16 rounding.
    base = AutoModelForCausalLM.from_pretrained(tiny_students[0], dtype=torch.bfloat16)
    from peft import PeftModel

    tokenizer = load_tokenizer(str(folder))
    expected = _logits(PeftModel.from_pretrained(base, folder), tokenizer)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    torch.testing.assert_close(_logits(merged, tokenizer), expected, atol=3e-2, rtol=3e-2)


def test_a_4bit_trained_student_is_refused_for_evaluation_without_bitsandbytes_and_cuda(
    tiny_students, tmp_path
):
    folder, _ = _lora_student(tiny_students[0], tmp_path, torch.bfloat16, load_in_4bit=True)
    with pytest.raises(ConfigError, match=r"(?s)4-bit base.*bitsandbytes.*export.*--merge"):
        load_causal_lm(str(folder))


def test_a_4bit_trained_student_loads_its_base_in_nf4_as_trained_spy_no_gpu_here(
    tiny_students, tmp_path, monkeypatch
):
    from qrdistill.models import loading

    folder, _ = _lora_student(tiny_students[0], tmp_path, torch.bfloat16, load_in_4bit=True)
    asked = {}

    def spy(path, **kwargs):
        asked.update(kwargs, path=path)
        raise RuntimeError("stop: no GPU here")

    monkeypatch.setattr(loading, "four_bit_available", lambda: True)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    with pytest.raises(RuntimeError, match="no GPU here"):
        load_causal_lm(str(folder), dtype="float32")
    quant = asked["quantization_config"]
    assert asked["path"] == str(tiny_students[0])
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16 == asked["dtype"]


def test_frozen_student_is_a_pointer_and_a_trained_student_is_not_a_training_base(
    tiny_students, tmp_path
):
    base = AutoModelForCausalLM.from_pretrained(tiny_students[1])
    cfg = StudentConfig(name="f", model=str(tiny_students[1]), frozen=True)
    folder = save_student(base, cfg, torch.float32, tmp_path / "f")
    assert [p.name for p in folder.iterdir()] == ["student.json"]
    merged = AutoModelForCausalLM.from_pretrained(merge_student(folder, tmp_path / "merged"))
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in merged.state_dict().items())
    lora_folder, _ = _lora_student(tiny_students[0], tmp_path)
    with pytest.raises(ConfigError, match="adapter folder.*--merge"):
        load_student(StudentConfig(name="x", model=str(lora_folder)))


def test_a_packaged_alias_stays_an_alias_and_resolves_through_another_machines_cache(
    tiny_students, tmp_path, monkeypatch
):
    """A packaged model's converted folder lives in the user's cache (QRDISTILL_CACHE): a tiny
    model stands in for SmolLM2's in one cache, a copy of it in a second cache plays another
    machine, and the first cache is gone when the student is loaded there."""
    import shutil

    from qrdistill.models import packaged_model_path

    alias = "smollm2-135m-instruct"
    here, there = tmp_path / "cache_here", tmp_path / "cache_there"
    for cache in (here, there):
        shutil.copytree(tiny_students[0], cache / "models" / alias)
    monkeypatch.setenv("QRDISTILL_CACHE", str(here))
    folder, model = _lora_student(packaged_model_path(alias), tmp_path, configured=alias)
    assert read_json(folder / "student.json")["base"] == alias
    tokenizer = load_tokenizer(str(tiny_students[0]))
    expected = _logits(model, tokenizer)

    moved = shutil.move(folder, tmp_path / "elsewhere")
    shutil.rmtree(here)
    monkeypatch.setenv("QRDISTILL_CACHE", str(there))
    loaded, _ = load_causal_lm(str(moved))
    torch.testing.assert_close(_logits(loaded, tokenizer), expected, atol=1e-5, rtol=1e-5)


def test_a_local_base_is_recorded_as_an_absolute_folder(tiny_students, tmp_path, monkeypatch):
    """The twin of the alias: a folder named relative to the working directory."""
    monkeypatch.chdir(tiny_students[0].parent)
    folder, _ = _lora_student(tiny_students[0], tmp_path, configured=tiny_students[0].name)
    assert read_json(folder / "student.json")["base"] == str(tiny_students[0].resolve())


def test_plain_peft_loads_a_student_of_a_local_base_as_qrdistill_does(tiny_students, tmp_path):
    from peft import AutoPeftModelForCausalLM

    folder, _ = _lora_student(tiny_students[0], tmp_path)
    ours, tokenizer = load_causal_lm(str(folder))
    plain = AutoPeftModelForCausalLM.from_pretrained(folder)
    expected = _logits(ours, tokenizer)
    torch.testing.assert_close(_logits(plain, tokenizer), expected, atol=1e-5, rtol=1e-5)
    base = AutoModelForCausalLM.from_pretrained(tiny_students[0])
    assert (_logits(base, tokenizer) - expected).abs().max() > 1e-3  # the adapter is loaded
