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
    data["figures"] = headline(data)
    figures_file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(sorted(data.items())), indent=2, sort_keys=False) + "\n"
    if not figures_file.exists() or figures_file.read_text() != text:
        figures_file.write_text(text)


def headline(data: dict) -> dict:
    """The benchmark-style `figures` object (value, unit, target, met) of the sections present."""
    checks = []
    if "bad_inputs" in data:
        checks.append(
            (
                "bad_inputs_tried",
                data["bad_inputs"]["tried"],
                "generated malformed inputs",
                ">=",
                300,
            )
        )
    if "crash" in data:
        crash = data["crash"]
        checks += [
            (
                "sigkill_points",
                crash["kills"],
                "kills across generate, filter, train, evaluate",
                ">=",
                8,
            ),
            ("artifacts_different_after_rerun", crash["artifacts_different"], "files", "==", 0),
            (
                "finished_requests_asked_again",
                crash["finished_requests_asked_again"],
                "requests",
                "==",
                0,
            ),
            ("metrics_rows_lost", crash["metrics_rows_lost"], "rows", "==", 0),
            ("metrics_rows_duplicated", crash["metrics_rows_duplicated"], "rows", "==", 0),
        ]
    return {
        name: {
            "value": value,
            "unit": unit,
            "target": f"{op} {bound}",
            "met": value >= bound if op == ">=" else value == bound,
        }
        for name, value, unit, op, bound in checks
    }
