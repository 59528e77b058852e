"""Stage 2: answer check and LLM judge over the teacher's paths, with a per-style funnel."""

from qrdistill.quality.config import FilterConfig
from qrdistill.quality.filter import filter_paths, funnel_table
from qrdistill.quality.judge import parse_verdict

__all__ = ["FilterConfig", "filter_paths", "funnel_table", "parse_verdict"]
