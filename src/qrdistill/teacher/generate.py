"""Stage 1: the teacher writes `samples_per_style` paths per style per question.

out_dir/paths.jsonl   ReasoningPath records (written atomically at the end)
out_dir/usage.json    tokens and USD (when prices are set) per style and in total; also written
                      when the budget stops the stage, with how far it got
out_dir/cache.sqlite  every finished request, so a rerun (or a run after a crash) does only the rest
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qrdistill.errors import BudgetReached, DataError
from qrdistill.llm import (
    BackendConfig,
    Request,
    RequestCache,
    make_backend,
    make_request,
    run_cached,
)
from qrdistill.llm.budget import Spend, usage_report
from qrdistill.records import Example, Generation, ReasoningPath, Usage
from qrdistill.tasks import get_task
from qrdistill.teacher.config import GenerateConfig
from qrdistill.teacher.styles import apply_style
from qrdistill.utils.io import read_jsonl_as, write_json, write_jsonl


@dataclass(frozen=True)
class PathJob:
    example: Example
    style: str
    sample_index: int
    base_prompt: str
    request: Request


def plan_jobs(cfg: GenerateConfig, examples: list[Example]) -> list[PathJob]:
    jobs = []
    for example in examples:
        base_prompt = get_task(example.task).build_prompt(example)
        for style in cfg.styles:
            styled = apply_style(cfg.style_template(style), base_prompt)
            for sample_index in range(cfg.samples_per_style):
                label = f"question {example.id}, style {style}, sample {sample_index}"
                request = make_request(cfg.backend, styled, sample_index, label)
                jobs.append(PathJob(example, style, sample_index, base_prompt, request))
    return jobs


def job_path(job: PathJob, text: str, **fields) -> ReasoningPath:
    """The path a job stands for, with `text` as its reasoning and any further fields."""
    return ReasoningPath(
        id=ReasoningPath.make_id(job.example.id, job.style, job.sample_index),
        question_id=job.example.id,
        task=job.example.task,
        style=job.style,
        sample_index=job.sample_index,
        prompt=job.base_prompt,
        gold=job.example.gold,
        text=text,
        **fields,
    )


def to_path(job: PathJob, generation: Generation, cfg: GenerateConfig) -> ReasoningPath:
    """The path of a finished job: its answer text (which the answer check reads), its thinking
    apart, and what students learn from it."""
    task = get_task(job.example.task)
    return job_path(
        job,
        generation.text,
        thinking=generation.thinking,
        learn=cfg.learn,
        answer=task.extract_answer(generation.text, job.example.choices),
        correct=task.is_correct(generation.text, job.example.gold, job.example.choices),
        usage=Usage(
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            reasoning_tokens=generation.reasoning_tokens,
        ),
        backend=cfg.backend.kind,
        model=cfg.backend.model,
    )


def usage_summary(paths: list[ReasoningPath], backend: BackendConfig) -> dict:
    """Tokens per style and in total; USD when both prices are configured (else null)."""
    per_style: dict[str, list[Usage]] = {}
    for path in paths:
        per_style.setdefault(path.style, []).append(path.usage)
    return usage_report(backend, per_style, "paths")


def _check_unique_ids(examples: list[Example], examples_path: Path) -> None:
    seen = set()
    for example in examples:
        if example.id in seen:
            raise DataError(
                f"{examples_path}: question id '{example.id}' appears twice; ids must "
                "be unique (they name the paths and the cache entries)"
            )
        seen.add(example.id)


def generate_paths(cfg: GenerateConfig, examples_path: Path, out_dir: Path) -> Path:
    """Generate the paths for every question in `examples_path`; return out_dir/paths.jsonl.

    Safe to rerun and to kill: finished requests are read back from the cache, and paths.jsonl is
    only written (atomically) once every request has finished. With `cfg.budget`, generation
    stops once the budget is spent (BudgetReached), keeping every finished request; a rerun with
    a higher cap continues from there.
    """
    examples_path, out_dir = Path(examples_path), Path(out_dir)
    examples = read_jsonl_as(examples_path, Example)
    _check_unique_ids(examples, examples_path)
    jobs = plan_jobs(cfg, examples)
    spend = Spend(cfg.backend, cfg.budget)
    with RequestCache(out_dir / "cache.sqlite") as cache:
        results = run_cached(
            [job.request for job in jobs],
            cache,
            lambda: make_backend(cfg.backend),
            backend=cfg.backend,
            desc="teacher paths",
            show_progress=cfg.show_progress,
            spend=spend if cfg.budget is not None else None,
        )
    paths = [
        to_path(job, results[job.request.key], cfg) for job in jobs if job.request.key in results
    ]
    summary = usage_summary(paths, cfg.backend)
    if len(paths) < len(jobs):
        _stop_at_budget(jobs, results, spend, summary, out_dir)
    write_json(out_dir / "usage.json", summary)
    paths_path = out_dir / "paths.jsonl"
    write_jsonl(paths_path, paths)
    return paths_path


def _stop_at_budget(
    jobs: list[PathJob], results: dict, spend: Spend, summary: dict, out_dir: Path
) -> None:
    """Record how far generation got in usage.json, then raise BudgetReached saying so."""
    questions = list(dict.fromkeys(job.example.id for job in jobs))
    unfinished = {job.example.id for job in jobs if job.request.key not in results}
    done = len(questions) - len(unfinished)
    caps = [
        f"generate.budget.{name}"
        for name in ("max_usd", "max_total_tokens")
        if getattr(spend.budget, name) is not None
    ]
    summary["stopped_by_budget"] = {
        "questions_complete": done,
        "questions": len(questions),
        "requests_finished": len(jobs) - sum(job.request.key not in results for job in jobs),
        "requests": len(jobs),
    }
    write_json(out_dir / "usage.json", summary)
    raise BudgetReached(
        f"generate stopped at its budget: spent {spend.describe()}; {done} of {len(questions)} "
        f"questions complete ({summary['stopped_by_budget']['requests_finished']} of "
        f"{len(jobs)} requests); every finished request is kept in {out_dir / 'cache.sqlite'}. "
        f"Raise {' or '.join(caps)} and run again to continue from here"
    )
