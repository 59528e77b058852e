"""The fault suite's figures (counts only, no timings). `make fault-figures` runs the suite with
QRDISTILL_FAULT_FIGURES set and merges them into benchmarks/results/fault_suite.json, which the
README's "Reliability" section quotes; a plain `make test` writes no tracked file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(section: str, figures: dict) -> None:
    target = os.environ.get("QRDISTILL_FAULT_FIGURES")
    if not target:
        return
    figures_file = Path(target)
    data = json.loads(figures_file.read_text()) if figures_file.exists() else {}
    data["about"] = (
        "Written by tests/faults (make fault-figures). bad_inputs: generated malformed inputs, "
        "each ended in a one-line error (exit 2) or a retry, never a traceback. "
        "crash: SIGKILL points of `qrdistill run` on tiny models and a real "
        "`transformers serve` teacher/judge; the final artifacts are compared with an "
        "uninterrupted run."
    )
    data[section] = figures
    figures_file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(sorted(data.items())), indent=2, sort_keys=False) + "\n"
    if not figures_file.exists() or figures_file.read_text() != text:
        figures_file.write_text(text)
