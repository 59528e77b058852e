"""The report's quality-filter section ends with what training could not take: kept paths too
long for train.max_length, per method and style (from train/<method>/summary.json)."""

from __future__ import annotations

from qrdistill.reporting import build_report
from qrdistill.reporting.config import ReportConfig
from qrdistill.utils.io import write_json

FUNNEL = {
    "threshold": 0.5,
    "per_style": {"vanilla": {"generated": 4, "answer_correct": 3, "judge_kept": 3}},
    "total": {"generated": 4, "answer_correct": 3, "judge_kept": 3},
}


def report(tmp_path, counts: dict) -> str:
    write_json(tmp_path / "filter" / "funnel.json", FUNNEL)
    write_json(
        tmp_path / "train" / "qr_distill" / "summary.json",
        {"method": "qr_distill", "config": {"max_length": 2048}, "counts": counts},
    )
    build_report(tmp_path, tmp_path / "out", cfg=ReportConfig(include_paper_reference=False))
    return (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_paths_too_long_to_train_are_reported_with_the_funnel(tmp_path):
    md = report(
        tmp_path,
        {
            "items": 2,
            "items_dropped": 1,
            "items_dropped_per_style": {"vanilla": 1},
            "truncated_prompt": {"a": 0, "b": 2},
        },
    )
    assert (
        "Method qr_distill: 1 of 3 training items longer than train.max_length = 2048 tokens "
        "were dropped (vanilla 1); 2 prompt(s) were cut from the left to fit"
    ) in md


def test_nothing_is_said_when_every_path_fits(tmp_path):
    md = report(
        tmp_path,
        {"items": 3, "items_dropped": 0, "items_dropped_per_style": {}, "truncated_prompt": {}},
    )
    assert "train.max_length" not in md
