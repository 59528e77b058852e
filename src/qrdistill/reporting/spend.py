"""The report's spend section: tokens and USD per style, of the teacher (generate/usage.json) and
of the judge (filter/usage.json)."""

from __future__ import annotations

from pathlib import Path

from qrdistill.reporting.document import Heading, Paragraph, Table
from qrdistill.utils.io import read_json

STAGES = (("generate", "Teacher", "paths"), ("filter", "Judge", "paths_judged"))


def spend_table(usage: dict, who: str, counted: str) -> Table:
    """One row per style and a total: requests' paths, prompt/completion/total tokens, USD; with
    a reasoning model, also the output tokens it reported as reasoning (part of the output)."""
    reasoning = bool(usage["total"].get("reasoning_tokens"))
    rows = []
    for style, c in [*usage["per_style"].items(), ("total", usage["total"])]:
        rows.append(
            [
                style,
                str(c[counted]),
                f"{c['prompt_tokens']:,}",
                f"{c['completion_tokens']:,}",
                *([f"{c.get('reasoning_tokens', 0):,}"] if reasoning else []),
                f"{c['total_tokens']:,}",
                "–" if c.get("usd") is None else f"${c['usd']:,.4f}",
            ]
        )
    prices = (
        f"at ${usage['price_input_per_1m']:g} / ${usage['price_output_per_1m']:g} per million "
        "input / output tokens"
        if usage.get("price_input_per_1m") is not None
        and usage.get("price_output_per_1m") is not None
        else "no prices configured"
    )
    return Table(
        [
            "style",
            counted.replace("_", " "),
            "input tokens",
            "output tokens",
            *(["of them reasoning"] if reasoning else []),
            "tokens",
            "USD",
        ],
        rows,
        f"{who} ({usage['backend']} {usage['model']}), {prices}",
    )


def spend_section(doc, run_dir: Path, out_dir: Path) -> None:
    doc.add(Heading("Spend: tokens and USD per style"))
    found = False
    for stage, who, counted in STAGES:
        path = run_dir / stage / "usage.json"
        if not path.exists():
            continue
        found = True
        usage = read_json(path)
        doc.add(spend_table(usage, who, counted))
        stopped = usage.get("stopped_by_budget")
        if stopped:
            doc.add(
                Paragraph(
                    f"{who}: stopped at its budget with {stopped['questions_complete']} of "
                    f"{stopped['questions']} questions complete.",
                    note=True,
                )
            )
    if not found:
        doc.add(Paragraph("Not run: generation (generate/usage.json not found).", note=True))
