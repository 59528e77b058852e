"""Evaluate models on the test split: each answers every question alone, greedily.

For every model the same test questions get the same base prompt (the task's, plus an optional
zero-shot style instruction), rendered with the model's own chat template. The task extracts and
verifies each answer. Each finished model's predictions are saved under `models/` with a
fingerprint of what produced them, so a rerun after an interruption skips finished models.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qrdistill.errors import DataError
from qrdistill.evaluation.config import EvaluateConfig
from qrdistill.evaluation.ensemble import ensemble_predictions
from qrdistill.evaluation.metrics import paired_comparisons, summarize
from qrdistill.evaluation.stopping import stop_rule
from qrdistill.llm.local import open_engine
from qrdistill.records import Example, Prediction
from qrdistill.tasks import get_task
from qrdistill.utils.config import StrictConfig
from qrdistill.utils.io import read_json, read_jsonl, read_jsonl_as, write_json, write_jsonl

console = Console(stderr=True)


class EvalModel(StrictConfig):
    """One model to evaluate: `student` of `method` (e.g. zero_shot, qr_distill, no_peer)."""

    method: str
    student: str
    model: str  # packaged alias, local folder or hub id
    # Identifies the weights behind `model` (e.g. the training run's fingerprint): a model folder
    # that was retrained under the same path is evaluated again rather than taken from the cache.
    fingerprint: str = ""

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.method}__{self.student}")


def base_prompt(example: Example, instruction: str | None) -> str:
    prompt = get_task(example.task).build_prompt(example)
    return f"{prompt}\n\n{instruction}" if instruction else prompt


def _fingerprint(
    model: EvalModel, cfg: EvaluateConfig, examples: list[Example], prompts: list[str]
) -> str:
    """Everything that determines a model's predictions (batch size does not, under greedy decoding)."""
    generation = cfg.model_dump(
        mode="json",
        include={"max_new_tokens", "stop", "stop_after_answer", "stop_on_loop", "backend", "dtype"},
    )
    payload = [
        model.model_dump(mode="json"),
        generation,
        [e.model_dump(mode="json") for e in examples],
        prompts,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _predict(
    model: EvalModel,
    cfg: EvaluateConfig,
    examples: list[Example],
    prompts: list[str],
    progress: Progress,
) -> list[dict]:
    bar = progress.add_task(f"{model.method}/{model.student}", total=len(examples))
    by_task: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_task.setdefault(example.task, []).append(index)
    generations = [None] * len(examples)
    engine = open_engine(
        cfg.backend,
        model.model,
        dtype=cfg.dtype,
        device=cfg.device or "auto",
        trust_remote_code=cfg.trust_remote_code,
    )
    try:
        # One generate call per task: each task states its answer in its own format, so each
        # has its own rule for when an answer is complete. Greedy, so the log-probabilities are
        # the ensembles' confidence.
        for name, indices in by_task.items():
            stop_when = stop_rule(get_task(name), cfg.stop_after_answer, cfg.stop_on_loop)
            outputs = engine.generate(
                [engine.render(prompts[i]) for i in indices],
                max_new_tokens=cfg.max_new_tokens,
                stop=cfg.stop,
                stop_when=stop_when,
                batch_size=cfg.batch_size,
                on_batch=lambda n: progress.advance(bar, n),
            )
            for index, output in zip(indices, outputs):
                generations[index] = output
    finally:
        engine.close()
    rows = []
    for example, generation in zip(examples, generations):
        task = get_task(example.task)
        rows.append(
            Prediction(
                question_id=example.id,
                task=example.task,
                method=model.method,
                student=model.student,
                model=model.model,
                response=generation.text,
                answer=task.extract_answer(generation.text, example.choices),
                correct=bool(task.is_correct(generation.text, example.gold, example.choices)),
                mean_logprob=generation.mean_logprob,
                completion_tokens=generation.completion_tokens,
            ).row()
        )
    return rows


def _finished(predictions_path: Path, done_path: Path, fingerprint: str) -> list[dict] | None:
    """The saved predictions of a model if they were made by exactly this setting, else None."""
    if not (predictions_path.exists() and done_path.exists()):
        return None
    if read_json(done_path).get("fingerprint") != fingerprint:
        return None
    return read_jsonl(predictions_path)


def evaluate(cfg: EvaluateConfig, test_path: Path, models: list[EvalModel], out_dir: Path) -> Path:
    """Evaluate `models` on the test Examples in `test_path`; return the predictions file.

    Writes out_dir/models/<method>__<student>.jsonl per model as it finishes, then
    out_dir/predictions.jsonl (every model, then the ensembles) and out_dir/summary.json
    (accuracy and 95% Wilson interval per method, student and task) and out_dir/paired.json
    (each method against qr_distill on the same questions: difference, paired-bootstrap
    interval, exact McNemar p; empty without qr_distill).
    """
    test_path, out_dir = Path(test_path), Path(out_dir)
    examples = read_jsonl_as(test_path, Example)[: cfg.limit]
    if not examples:
        raise DataError(f"{test_path}: no test questions to evaluate on")
    keys = [model.key for model in models]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two models share a method and student name: {keys}")
    prompts = [base_prompt(example, cfg.instruction) for example in examples]

    predictions: list[dict] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        for model in models:
            predictions_path = out_dir / "models" / f"{model.key}.jsonl"
            done_path = out_dir / "models" / f"{model.key}.done.json"
            fingerprint = _fingerprint(model, cfg, examples, prompts)
            rows = _finished(predictions_path, done_path, fingerprint)
            if rows is None:
                rows = _predict(model, cfg, examples, prompts, progress)
                # Predictions first, then the marker: an interruption between them only costs a rerun.
                write_jsonl(predictions_path, rows)
                write_json(
                    done_path, {"fingerprint": fingerprint, "model": model.model, "n": len(rows)}
                )
            else:
                progress.console.print(
                    f"{model.method}/{model.student}: finished earlier, reusing {predictions_path}"
                )
            accuracy = sum(row["correct"] for row in rows) / len(rows)
            progress.console.print(
                f"{model.method}/{model.student}: accuracy {accuracy:.1%} on {len(rows)} questions"
            )
            predictions += rows

    if cfg.ensembles:
        predictions += ensemble_predictions(predictions)
    write_jsonl(out_dir / "predictions.jsonl", predictions)
    write_json(out_dir / "summary.json", summarize(predictions))
    write_json(out_dir / "paired.json", paired_comparisons(predictions))
    return out_dir / "predictions.jsonl"
