"""What training leaves on disk per student, and the merged copy written on request.

`save_student` (end of training) writes the student's LoRA adapter in peft's layout plus
`student.json`, the pointer to its base (qrdistill.models.artifacts): megabytes, not a copy of
the base. `merge_student` (`qrdistill export RUN --method M --merge`) writes a standard HF folder
that `AutoModelForCausalLM.from_pretrained` loads with no peft and no qrdistill. It reloads the
base unquantized and merges there: a base trained in 4-bit is merged in bf16 by default, never
into NF4 weights (re-quantizing the merged sum would lose most of the LoRA update).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from qrdistill.errors import UsageError
from qrdistill.models.artifacts import RECORD, TrainedStudent, read_trained_student
from qrdistill.models.packaged import PACKAGED_MODELS
from qrdistill.training.config import StudentConfig
from qrdistill.utils.io import read_json, umask_modes, write_json

MERGE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _base_pointer(model: str) -> str:
    """A packaged alias or hub id as written; a local folder as an absolute path, so the pointer
    holds from any working directory."""
    if model in PACKAGED_MODELS or not Path(model).exists():
        return model
    return str(Path(model).resolve())


def _replace_dir(tmp: Path, out: Path) -> Path:
    umask_modes(tmp)  # safetensors writes its files 0o600
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def save_student(model, cfg: StudentConfig, dtype, out: Path, state_dict=None) -> Path:
    """Write a trained student's folder atomically: its adapter (none for a frozen student) and
    student.json. `dtype`: the torch dtype training loaded the base in; `state_dict`: the
    student's full state dict when the live model is sharded (FSDP, DeepSpeed), else None."""
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if not cfg.frozen:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        # peft keeps target_modules as a set, whose order differs between processes: sorted, the
        # same training writes the same bytes (resumed runs are compared with whole ones).
        adapter_config = read_json(tmp / "adapter_config.json")
        if isinstance(adapter_config.get("target_modules"), list):
            adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
            write_json(tmp / "adapter_config.json", adapter_config)
    record = TrainedStudent(
        base=_base_pointer(cfg.model),
        adapter=not cfg.frozen,
        load_in_4bit=cfg.load_in_4bit,
        dtype=str(dtype).removeprefix("torch."),
        trust_remote_code=cfg.trust_remote_code,
    )
    write_json(tmp / RECORD, record.model_dump(mode="json"))
    return _replace_dir(tmp, out)


def merge_dtype(student: TrainedStudent, requested: str = "auto") -> str:
    """The dtype a student's base is reloaded in to merge into: `requested` (bf16, fp16, fp32), or
    for auto the dtype it was trained in; bf16 when that base was 4-bit (or is unknown)."""
    if requested != "auto":
        if requested not in MERGE_DTYPES:
            raise UsageError(f"--dtype {requested}: choose auto, {', '.join(MERGE_DTYPES)}")
        return MERGE_DTYPES[requested]
    if student.load_in_4bit or student.dtype is None:
        return "bfloat16"
    return student.dtype


def merge_student(folder: Path, out: Path, dtype: str = "auto") -> Path:
    """Write `folder`'s student (base + adapter) merged into a standard HF folder at `out`,
    atomically, with its tokenizer. The base is always loaded unquantized (`merge_dtype`)."""
    from peft import PeftModel

    from qrdistill.models import load_causal_lm

    student = read_trained_student(folder)
    if student is None:
        raise UsageError(f"{folder}: not a trained student's folder (no {RECORD})")
    base, tokenizer = load_causal_lm(
        student.base,
        dtype=merge_dtype(student, dtype),
        trust_remote_code=student.trust_remote_code,
    )
    merged = PeftModel.from_pretrained(base, folder).merge_and_unload() if student.adapter else base
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return _replace_dir(tmp, out)


def merge_run(
    run_dir: Path,
    method: str,
    student: str | None = None,
    out: Path | None = None,
    dtype: str = "auto",
) -> list[Path]:
    """`qrdistill export RUN --method M [--student S] --merge [--out DIR]`: merge the method's
    students (or one) into DIR/<student>/ (default RUN/merged/<method>/<student>/)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    trained = sorted(p.parent.name for p in (run_dir / "train").glob("*/students") if p.is_dir())
    students_dir = run_dir / "train" / method / "students"
    if not students_dir.is_dir():
        raise UsageError(
            f"--method {method}: {run_dir} has no trained students for it "
            f"(trained methods: {', '.join(trained) or 'none'}); run `qrdistill train` first"
        )
    names = sorted(p.name for p in students_dir.iterdir() if (p / RECORD).is_file())
    if student is not None and student not in names:
        raise UsageError(
            f"--student {student}: method {method} in {run_dir} has no such student "
            f"(students: {', '.join(names) or 'none'})"
        )
    target = Path(out) if out else run_dir / "merged" / method
    return [
        merge_student(students_dir / name, target / name, dtype)
        for name in ([student] if student else names)
    ]
