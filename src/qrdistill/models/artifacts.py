"""A trained student on disk: its LoRA adapter, in peft's layout, and a pointer to its base.

    students/<name>/
      adapter_config.json        peft's; base_model_name_or_path is the folder or hub id the base
                                 was loaded from, so `AutoPeftModelForCausalLM` loads it on this
                                 machine with no qrdistill
      adapter_model.safetensors  the LoRA weights as trained (fp32)
      student.json               qrdistill's record (`TrainedStudent`): the base as configured
                                 (a packaged alias stays an alias, so it resolves through the
                                 same offline loader on any machine) and how training loaded it

A frozen student has `student.json` only (`adapter: false`): it is its base. Any other peft
adapter folder (adapter_config.json, no student.json) is read as a LoRA student of the base its
config names. `load_causal_lm` loads such a folder as base + adapter, exactly as trained; merging
is `qrdistill export --merge` (qrdistill.training.export), never implicit.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from qrdistill.errors import DataError
from qrdistill.utils.config import StrictConfig

RECORD = "student.json"
ADAPTER_CONFIG = "adapter_config.json"


class TrainedStudent(StrictConfig):
    base: str  # packaged alias, absolute local folder or hub id
    adapter: bool  # False for a frozen student: nothing was trained
    load_in_4bit: bool = False  # trained on an NF4-quantized base (QLoRA)
    # The dtype training loaded the base in ("bfloat16", "float16", "float32"); for a 4-bit base,
    # its compute dtype. None when unknown (an adapter made elsewhere).
    dtype: str | None = None
    trust_remote_code: bool = False


def read_trained_student(name: str | Path) -> TrainedStudent | None:
    """The record of a trained student's folder, or None when `name` is not one (a packaged alias,
    a hub id, a plain model folder). A damaged record is a DataError naming the file."""
    folder = Path(name)
    record, peft = folder / RECORD, folder / ADAPTER_CONFIG
    try:
        if record.is_file():
            return TrainedStudent.model_validate_json(record.read_text(encoding="utf-8"))
        if peft.is_file():
            base = json.loads(peft.read_text(encoding="utf-8")).get("base_model_name_or_path")
            if not base:
                raise DataError(f"{peft}: no base_model_name_or_path; cannot tell the base model")
            return TrainedStudent(base=base, adapter=True)
    except (ValidationError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{record if record.is_file() else peft}: not a valid trained-student record ({err})"
        ) from None
    return None
