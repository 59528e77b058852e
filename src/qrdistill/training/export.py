"""Export each student as a standard HF folder (LoRA merged into the base weights) that
`AutoModelForCausalLM.from_pretrained` loads with no peft and no qrdistill."""

from __future__ import annotations

import shutil
from pathlib import Path


def export_student(model, tokenizer, out: Path) -> Path:
    """Merge adapters (in place: call at the end of training) and save model + tokenizer atomically."""
    from peft import PeftModel

    merged = model.merge_and_unload() if isinstance(model, PeftModel) else model
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
