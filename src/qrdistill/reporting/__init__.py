"""Reports: `build_report(run_dir)` turns a run directory into report.md, report.html and PNGs."""

from qrdistill.reporting.config import ReportConfig

__all__ = ["ReportConfig", "build_report"]


def __getattr__(name: str):
    # Loaded on first use: `qrdistill.config` imports ReportConfig, and reading a config should not
    # pay for importing matplotlib.
    if name == "build_report":
        from qrdistill.reporting.report import build_report

        return build_report
    raise AttributeError(f"module 'qrdistill.reporting' has no attribute '{name}'")
