"""Evaluation: every model answers the test questions alone; accuracy with 95% intervals.

`evaluate(cfg, test_path, models, out_dir)` writes predictions.jsonl, summary.json and paired.json (see
docs/ARCHITECTURE.md); ensembles across a method's students are extra rows, reported apart.
"""

from qrdistill.evaluation.config import EvaluateConfig

__all__ = ["EvalModel", "EvaluateConfig", "evaluate"]


def __getattr__(name: str):
    # Loaded on first use: `qrdistill.config` imports EvaluateConfig, and reading a config should
    # not pay for importing torch and transformers.
    if name in ("EvalModel", "evaluate"):
        from qrdistill.evaluation import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'qrdistill.evaluation' has no attribute '{name}'")
