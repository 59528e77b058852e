"""The fault suite's figures, merged into benchmarks/results/fault_suite.json as its tests pass
(counts only, no timings: a rerun that behaves the same leaves the file unchanged). The README's
"Reliability" section quotes them."""

from __future__ import annotations

import json
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "fault_suite.json"


def record(section: str, figures: dict) -> None:
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data["about"] = ("Written by tests/faults (make test). bad_inputs: generated malformed inputs, "
                     "each ended in a one-line error (exit 2) or a retry, never a traceback. "
                     "crash: SIGKILL points of `qrdistill run` on tiny models and a real "
                     "`transformers serve` teacher/judge; the final artifacts are compared with an "
                     "uninterrupted run.")
    data[section] = figures
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(sorted(data.items())), indent=2, sort_keys=False) + "\n"
    if not FIGURES.exists() or FIGURES.read_text() != text:
        FIGURES.write_text(text)
