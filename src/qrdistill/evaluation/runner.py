"""Evaluate models on the test split: each answers every question alone, greedily.

For every model the same test questions get the same base prompt (the task's, plus an optional
zero-shot style instruction), rendered with the model's own chat template (or, with
`evaluate.chat_template: false`, sent as plain text). The task extracts and verifies each answer;
each answer is also scored under lm-evaluation-harness's conventions (`lm_eval_scores`: from the
answer, and for BoolQ, PIQA and ARC by log-likelihood, the harness's default there). Each
finished model's predictions are saved under `models/` with a fingerprint of what produced them,
so a rerun after an interruption skips finished models. While a model answers, every finished
batch is appended to `models/<key>.partial-<fingerprint>.jsonl`; a rerun with the same setting
asks that model only the questions not in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qrdistill.errors import DataError
from qrdistill.evaluation.config import EvaluateConfig
from qrdistill.evaluation.ensemble import ensemble_predictions
from qrdistill.evaluation.lm_eval_scores import (
    ChoiceRequest,
    choice_request,
    choice_scores,
    lm_eval_scores,
)
from qrdistill.evaluation.metrics import paired_comparisons, summarize
from qrdistill.evaluation.stopping import ANSWER_RULE, stop_rule
from qrdistill.llm.local import open_engine
from qrdistill.models.loading import plain_prompt
from qrdistill.records import Example, Generation, Prediction, ReasoningPath
from qrdistill.tasks import get_task
from qrdistill.utils.config import StrictConfig
from qrdistill.utils.io import (
    iter_jsonl,
    read_json,
    read_jsonl,
    read_jsonl_as,
    repair_torn_tail,
    write_json,
    write_jsonl,
)

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


DEFAULT_MAX_NEW_TOKENS = 256


def answer_budget(cfg: EvaluateConfig, model: EvalModel, path_texts: list[str]) -> int:
    """A model's budget of new tokens: `evaluate.max_new_tokens` when set (in the model's own
    tokens); else the teacher's longest path counted in this model's tokenizer, since students
    imitate paths up to that long and tokenizers differ (a budget in the teacher's tokens cuts a
    student with a finer tokenizer short); else, with no paths, DEFAULT_MAX_NEW_TOKENS."""
    if cfg.max_new_tokens is not None:
        return cfg.max_new_tokens
    if not path_texts:
        return DEFAULT_MAX_NEW_TOKENS
    from qrdistill.models import load_tokenizer

    tokenizer = load_tokenizer(model.model, trust_remote_code=cfg.trust_remote_code)
    return max(len(ids) for ids in tokenizer(path_texts, add_special_tokens=False)["input_ids"])


def _fingerprint(
    model: EvalModel, cfg: EvaluateConfig, budget: int, examples: list[Example], prompts: list[str]
) -> str:
    """Everything that determines a model's predictions (batch size does not, under greedy decoding)."""
    generation = cfg.model_dump(
        mode="json",
        include={"stop", "stop_after_answer", "stop_on_loop", "backend", "dtype", "chat_template"},
    )
    payload = [
        model.model_dump(mode="json"),
        {**generation, "max_new_tokens": budget, "answer_rule": ANSWER_RULE},
        [e.model_dump(mode="json") for e in examples],
        prompts,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _partial_path(models_dir: Path, key: str, fingerprint: str) -> Path:
    return models_dir / f"{key}.partial-{fingerprint[:16]}.jsonl"


def _drop_partials(models_dir: Path, key: str, keep: Path | None = None) -> None:
    """Remove a model's partial predictions, except `keep` (those of the current setting)."""
    for path in models_dir.glob(f"{key}.partial-*.jsonl"):
        if path != keep:
            path.unlink()


def _answered(partial: Path, n: int) -> dict[int, Generation]:
    """The completions saved by an interrupted evaluation of this model, by question index.
    A torn last line (the process stopped mid-write) is dropped and logged."""
    if not partial.exists():
        return {}
    repair_torn_tail(partial)
    done = {}
    for lineno, row in iter_jsonl(partial):
        index = row.pop("index", None)
        if not isinstance(index, int) or not 0 <= index < n:
            raise DataError(
                f"{partial}:{lineno}: question index {index!r} outside 0..{n - 1}; "
                "remove this file to evaluate the model from the start"
            )
        done[index] = Generation(**row)
    return done


def _predict(
    model: EvalModel,
    cfg: EvaluateConfig,
    budget: int,
    examples: list[Example],
    prompts: list[str],
    progress: Progress,
    partial: Path,
) -> list[dict]:
    """Answer every question, appending each finished batch to `partial` (one row per question:
    its index and completion) so that an interrupted evaluation keeps them; the questions already
    in `partial` are not asked again."""
    done = _answered(partial, len(examples))
    label = f"{model.method}/{model.student}"
    if done:
        progress.console.print(
            f"{label}: {len(done)} of {len(examples)} questions answered earlier, "
            f"generating the other {len(examples) - len(done)}"
        )
    bar = progress.add_task(label, total=len(examples), completed=len(done))
    by_task: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        if index not in done:
            by_task.setdefault(example.task, []).append(index)
    requests = {i: r for i, e in enumerate(examples) if (r := choice_request(e)) is not None}
    likelihood: dict[int, dict[str, bool]] = {}
    if by_task or requests:
        engine = open_engine(
            cfg.backend,
            model.model,
            dtype=cfg.dtype,
            device=cfg.device or "auto",
            trust_remote_code=cfg.trust_remote_code,
        )
        try:
            if by_task:
                _generate(
                    engine,
                    cfg,
                    budget,
                    by_task,
                    prompts,
                    done,
                    partial,
                    lambda n: progress.advance(bar, n),
                )
            likelihood = _choice_scores(engine, requests, cfg.batch_size, progress, label)
        finally:
            engine.close()
    rows = []
    for index, example in enumerate(examples):
        generation, task = done[index], get_task(example.task)
        lm_eval = {
            **(lm_eval_scores(task, generation.text, example.gold, example.choices) or {}),
            **likelihood.get(index, {}),
        }
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
                lm_eval=lm_eval or None,
            ).row()
        )
    return rows


def _choice_scores(
    engine, requests: dict[int, ChoiceRequest], batch_size: int, progress: Progress, label: str
) -> dict[int, dict[str, bool]]:
    """lm-eval's log-likelihood scores (`acc`, `acc_norm`) of the questions whose task has them;
    {} on an engine that cannot score a continuation (vLLM here), with a note saying so."""
    if not requests:
        return {}
    if not hasattr(engine, "loglikelihoods"):
        progress.console.print(
            f"{label}: lm-eval's log-likelihood scores need the hf backend; not computed"
        )
        return {}
    flat = [pair for request in requests.values() for pair in request.continuations()]
    logprobs = iter(engine.loglikelihoods(flat, batch_size=batch_size))
    return {
        index: choice_scores(request, [next(logprobs) for _ in request.options])
        for index, request in requests.items()
    }


def _generate(
    engine,
    cfg: EvaluateConfig,
    budget: int,
    by_task: dict[str, list[int]],
    prompts: list[str],
    done: dict[int, Generation],
    partial: Path,
    advance: Callable[[int], object],
) -> None:
    partial.parent.mkdir(parents=True, exist_ok=True)
    # Without the chat template the model gets the task's prompt as plain text, as a base model
    # without a template does (and lm-eval does unless asked to apply one).
    render = engine.render if cfg.chat_template else plain_prompt
    with partial.open("a", encoding="utf-8") as handle:
        # One generate call per task: each task states its answer in its own format, so each
        # has its own rule for when an answer is complete. Greedy, so the log-probabilities
        # are the ensembles' confidence. The questions left after an interruption are a
        # suffix of the hf engine's (length-sorted) order, so they form the same batches
        # again: a continued run gives the same answers, token for token, as an
        # uninterrupted one (log-probabilities to float tolerance: a new process may sum in
        # another order).
        for name, indices in by_task.items():

            def save(batch: dict[int, Generation], indices=indices) -> None:
                rows = {indices[position]: g for position, g in batch.items()}
                # One write per batch: an interruption tears at most the last line.
                handle.write(
                    "".join(json.dumps({"index": i, **asdict(g)}) + "\n" for i, g in rows.items())
                )
                handle.flush()
                os.fsync(handle.fileno())
                done.update(rows)
                advance(len(rows))

            stop_when = stop_rule(get_task(name), cfg.stop_after_answer, cfg.stop_on_loop)
            engine.generate(
                [render(prompts[i]) for i in indices],
                max_new_tokens=budget,
                stop=cfg.stop,
                stop_when=stop_when,
                batch_size=cfg.batch_size,
                on_batch=save,
            )


def _finished(predictions_path: Path, done_path: Path, fingerprint: str) -> list[dict] | None:
    """The saved predictions of a model if they were made by exactly this setting, else None."""
    if not (predictions_path.exists() and done_path.exists()):
        return None
    if read_json(done_path).get("fingerprint") != fingerprint:
        return None
    return read_jsonl(predictions_path)


def _save(
    rows: list[dict], predictions_path: Path, done_path: Path, fingerprint: str, model: EvalModel
) -> None:
    # Predictions first, then the marker: an interruption between them only costs a rerun.
    write_jsonl(predictions_path, rows)
    write_json(done_path, {"fingerprint": fingerprint, "model": model.model, "n": len(rows)})


def evaluate(
    cfg: EvaluateConfig,
    test_path: Path,
    models: list[EvalModel],
    out_dir: Path,
    reuse_from: Path | None = None,
    paths_path: Path | None = None,
) -> Path:
    """Evaluate `models` on the test Examples in `test_path`; return the predictions file.

    `reuse_from`, another evaluation folder, lends its finished predictions of any model whose
    fingerprint matches (the same weights, setting and questions: greedy answers would be the
    same), so the replicas of a seeded run answer with the untrained students once.

    `paths_path`, the teacher's paths (generate/paths.jsonl), sets each model's answer budget
    when `evaluate.max_new_tokens` is not set: the longest path in the model's own tokens
    (`answer_budget`; every method trains on a subset of these paths).

    Writes out_dir/models/<method>__<student>.jsonl per model as it finishes, then
    out_dir/predictions.jsonl (every model, then the ensembles) and out_dir/summary.json
    (accuracy and 95% Wilson interval per method, student and task, and the accuracy under each
    of lm-evaluation-harness's conventions for the task) and out_dir/paired.json
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
    # What students learned from each path (its thinking too, where they learn it): their budget.
    paths = read_jsonl_as(paths_path, ReasoningPath) if paths_path else []
    path_texts = [p.learned_text() for p in paths]

    predictions: list[dict] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        for model in models:
            models_dir = out_dir / "models"
            predictions_path = models_dir / f"{model.key}.jsonl"
            done_path = models_dir / f"{model.key}.done.json"
            budget = answer_budget(cfg, model, path_texts)
            fingerprint = _fingerprint(model, cfg, budget, examples, prompts)
            rows, source = _finished(predictions_path, done_path, fingerprint), predictions_path
            if rows is None and reuse_from is not None:
                source = reuse_from / "models" / predictions_path.name
                rows = _finished(source, source.with_name(done_path.name), fingerprint)
            if rows is None:
                partial = _partial_path(models_dir, model.key, fingerprint)
                _drop_partials(models_dir, model.key, keep=partial)  # other settings' answers
                rows = _predict(model, cfg, budget, examples, prompts, progress, partial)
                _save(rows, predictions_path, done_path, fingerprint, model)
                partial.unlink()
            else:
                _drop_partials(models_dir, model.key)
                if source != predictions_path:
                    _save(rows, predictions_path, done_path, fingerprint, model)
                progress.console.print(
                    f"{model.method}/{model.student}: finished earlier, reusing {source}"
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
