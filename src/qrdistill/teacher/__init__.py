"""Stage 1: multi-style reasoning paths from a teacher (OpenAI-compatible server, local model, vLLM;
see `qrdistill.llm` for the completion service it runs on)."""

from qrdistill.teacher.config import GenerateConfig
from qrdistill.teacher.generate import generate_paths
from qrdistill.teacher.styles import BUILTIN_STYLES

__all__ = ["BUILTIN_STYLES", "GenerateConfig", "generate_paths"]
