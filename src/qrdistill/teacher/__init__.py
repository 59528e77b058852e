"""Stage 1: multi-style reasoning paths from a teacher (OpenAI-compatible server, local model, vLLM)."""

from qrdistill.errors import BackendError
from qrdistill.teacher.config import BackendConfig, GenerateConfig
from qrdistill.teacher.generate import generate_paths
from qrdistill.teacher.styles import BUILTIN_STYLES

__all__ = ["BUILTIN_STYLES", "BackendConfig", "BackendError", "GenerateConfig", "generate_paths"]
