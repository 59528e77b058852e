"""Configuration of the report."""

from __future__ import annotations

from qrdistill.utils.config import StrictConfig


class ReportConfig(StrictConfig):
    title: str = "QR-Distill run report"
    # Show the paper's Tables 1 and 2 beside this run's numbers, labelled as the paper's.
    include_paper_reference: bool = True
