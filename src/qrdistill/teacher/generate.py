"""Stage 1: the teacher writes `samples_per_style` paths per style per question.

out_dir/paths.jsonl   ReasoningPath records (written atomically at the end)
out_dir/usage.json    tokens per style and in total, and a cost estimate when prices are set
out_dir/cache.sqlite  every finished request, so a rerun (or a run after a crash) does only the rest
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qrdistill.errors import DataError
from qrdistill.llm import (
    BackendConfig,
    Request,
    RequestCache,
    make_backend,
    make_request,
    run_cached,
)
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


def to_path(job: PathJob, generation: Generation, backend: BackendConfig) -> ReasoningPath:
    task = get_task(job.example.task)
    return ReasoningPath(
        id=ReasoningPath.make_id(job.example.id, job.style, job.sample_index),
        question_id=job.example.id,
        task=job.example.task,
        style=job.style,
        sample_index=job.sample_index,
        prompt=job.base_prompt,
        gold=job.example.gold,
        text=generation.text,
        answer=task.extract_answer(generation.text, job.example.choices),
        correct=task.is_correct(generation.text, job.example.gold, job.example.choices),
        usage=Usage(
            prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens
        ),
        backend=backend.kind,
        model=backend.model,
    )


def usage_summary(paths: list[ReasoningPath], backend: BackendConfig) -> dict:
    """Tokens per style and in total; cost when both prices are configured (else null)."""

    def cost(prompt_tokens: int, completion_tokens: int) -> float | None:
        if backend.price_input_per_1m is None or backend.price_output_per_1m is None:
            return None
        return round(
            (
                prompt_tokens * backend.price_input_per_1m
                + completion_tokens * backend.price_output_per_1m
            )
            / 1e6,
            6,
        )

    def summarise(group: list[ReasoningPath]) -> dict:
        prompt_tokens = sum(p.usage.prompt_tokens for p in group)
        completion_tokens = sum(p.usage.completion_tokens for p in group)
        return {
            "paths": len(group),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost": cost(prompt_tokens, completion_tokens),
        }

    styles = list(dict.fromkeys(p.style for p in paths))
    return {
        "backend": backend.kind,
        "model": backend.model,
        "price_input_per_1m": backend.price_input_per_1m,
        "price_output_per_1m": backend.price_output_per_1m,
        "per_style": {s: summarise([p for p in paths if p.style == s]) for s in styles},
        "total": summarise(paths),
    }


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

    Safe to rerun and to kill: finished requests are read back from the cache, and the output
    files are only written (atomically) once every request has finished.
    """
    examples_path, out_dir = Path(examples_path), Path(out_dir)
    examples = read_jsonl_as(examples_path, Example)
    _check_unique_ids(examples, examples_path)
    jobs = plan_jobs(cfg, examples)
    with RequestCache(out_dir / "cache.sqlite") as cache:
        results = run_cached(
            [job.request for job in jobs],
            cache,
            lambda: make_backend(cfg.backend),
            desc="teacher paths",
            show_progress=cfg.show_progress,
        )
    paths = [to_path(job, results[job.request.key], cfg.backend) for job in jobs]
    write_json(out_dir / "usage.json", usage_summary(paths, cfg.backend))
    paths_path = out_dir / "paths.jsonl"
    write_jsonl(paths_path, paths)
    return paths_path
