"""The report's spend section: tokens and USD per style from generate/ and filter/usage.json."""

from __future__ import annotations

from qrdistill.llm import BackendConfig
from qrdistill.llm.budget import usage_report
from qrdistill.records import Usage
from qrdistill.reporting import build_report
from qrdistill.reporting.config import ReportConfig
from qrdistill.utils.io import write_json


def test_spend_per_style_and_a_budget_stop_are_in_the_report(tmp_path):
    priced = BackendConfig(
        kind="openai", model="gpt-x", price_input_per_1m=2.0, price_output_per_1m=8.0
    )
    teacher = usage_report(
        priced,
        {"vanilla": [Usage(prompt_tokens=1000, completion_tokens=500)] * 2, "program": []},
        "paths",
    )
    teacher["stopped_by_budget"] = {"questions_complete": 1, "questions": 4}
    write_json(tmp_path / "generate" / "usage.json", teacher)
    write_json(
        tmp_path / "filter" / "usage.json",
        usage_report(
            BackendConfig(),
            {"vanilla": [Usage(prompt_tokens=7, completion_tokens=1)]},
            "paths_judged",
        ),
    )
    build_report(tmp_path, tmp_path / "out", cfg=ReportConfig(include_paper_reference=False))
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    # 2 paths x (1000 x $2 + 500 x $8) / 1M = $0.012
    assert "| vanilla | 2 | 2,000 | 1,000 | 3,000 | $0.0120 |" in md
    assert "| total | 2 | 2,000 | 1,000 | 3,000 | $0.0120 |" in md
    assert "at $2 / $8 per million input / output tokens" in md
    assert "stopped at its budget with 1 of 4 questions complete" in md
    assert "| vanilla | 1 | 7 | 1 | 8 | – |" in md and "no prices configured" in md


def test_a_reasoning_teachers_reasoning_tokens_are_a_column_of_the_output(tmp_path):
    priced = BackendConfig(
        kind="openai", model="r1", price_input_per_1m=1.0, price_output_per_1m=4.0
    )
    usage = Usage(prompt_tokens=100, completion_tokens=2000, reasoning_tokens=1800)
    write_json(
        tmp_path / "generate" / "usage.json",
        usage_report(priced, {"vanilla": [usage] * 2}, "paths"),
    )
    build_report(tmp_path, tmp_path / "out", cfg=ReportConfig(include_paper_reference=False))
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    # 2 paths x (100 x $1 + 2,000 x $4) / 1M: the reasoning tokens are priced as output.
    assert (
        "| style | paths | input tokens | output tokens | of them reasoning | tokens | USD |" in md
    )
    assert "| vanilla | 2 | 200 | 4,000 | 3,600 | 4,200 | $0.0162 |" in md
