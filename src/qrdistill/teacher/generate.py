"""Stage 1: the teacher writes `samples_per_style` paths per style per question.

out_dir/paths.jsonl   ReasoningPath records (written atomically at the end)
out_dir/revthink.jsonl  with `revthink`: RevThinkTriple records, one per question
                      (qrdistill.teacher.revthink; written atomically at the end)
out_dir/usage.json    tokens and USD (when prices are set) per style, per RevThink request
                      ("revthink:<role>") and in total; also written when the budget stops the
                      stage, with how far it got
out_dir/cache.sqlite  every finished request, so a rerun (or a run after a crash) does only the rest
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
from qrdistill.records import (
    REVTHINK_FILE,
    Example,
    Generation,
    ReasoningPath,
    RevThinkTriple,
    Usage,
)
from qrdistill.tasks import get_task
from qrdistill.teacher.config import GenerateConfig
from qrdistill.teacher.revthink import ROLES, question_steps, to_triple
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


def usage_summary(
    paths: list[ReasoningPath], backend: BackendConfig, triples: list[RevThinkTriple] = ()
) -> dict:
    """Tokens per style, per RevThink request ("revthink:<role>", each counted as one path) and
    in total; USD when both prices are configured (else null)."""
    per_style: dict[str, list[Usage]] = {}
    for path in paths:
        per_style.setdefault(path.style, []).append(path.usage)
    for triple in triples:
        for role, usage in triple.usage.items():
            per_style.setdefault(f"revthink:{role}", []).append(usage)
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


def generate_paths(
    cfg: GenerateConfig, examples_path: Path, out_dir: Path, revthink: bool = False
) -> Path:
    """Generate the paths for every question in `examples_path`; return out_dir/paths.jsonl.
    With `revthink`, also RevThink's backward question, backward reasoning and consistency check
    per question (out_dir/revthink.jsonl), through the same cache and budget.

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
    # Made once, when a request is not cached, and kept for RevThink's rounds: a local model
    # (hf, vllm) is loaded once per stage, not once per round.
    backend = functools.cache(lambda: make_backend(cfg.backend))
    with RequestCache(out_dir / "cache.sqlite") as cache:

        def run(requests: list[Request], desc: str) -> dict[str, Generation]:
            return run_cached(
                requests,
                cache,
                backend,
                backend=cfg.backend,
                desc=desc,
                show_progress=cfg.show_progress,
                spend=spend if cfg.budget is not None else None,
            )

        results = run([job.request for job in jobs], "teacher paths")
        paths = [
            to_path(job, results[job.request.key], cfg)
            for job in jobs
            if job.request.key in results
        ]
        if len(paths) < len(jobs):
            done = {job.example.id for job in jobs} - {
                job.example.id for job in jobs if job.request.key not in results
            }
            _stop_at_budget(
                usage_summary(paths, cfg.backend),
                spend,
                out_dir,
                len(done),
                len(examples),
                len(paths),
                len(jobs),
            )
        triples = _revthink_triples(cfg, examples, run, spend, paths, out_dir) if revthink else []
    write_json(out_dir / "usage.json", usage_summary(paths, cfg.backend, triples))
    if revthink:
        write_jsonl(out_dir / REVTHINK_FILE, triples)
    paths_path = out_dir / "paths.jsonl"
    write_jsonl(paths_path, paths)
    return paths_path


def _revthink_triples(
    cfg: GenerateConfig,
    examples: list[Example],
    run: Callable[[list[Request], str], dict[str, Generation]],
    spend: Spend,
    paths: list[ReasoningPath],
    out_dir: Path,
) -> list[RevThinkTriple]:
    """RevThink's three requests per question, a round per role, each round asking only what the
    replies before it make complete (qrdistill.teacher.revthink)."""
    prompts = {e.id: get_task(e.task).build_prompt(e) for e in examples}
    known: dict[str, Generation] = {}
    for role in ROLES:
        steps = [question_steps(cfg, e, prompts[e.id], known) for e in examples]
        ready = [s.request for qs in steps for s in qs if s.role == role and s.unknown_tokens == 0]
        known.update(run(ready, f"revthink {role.replace('_', ' ')}"))
    steps = [question_steps(cfg, e, prompts[e.id], known) for e in examples]
    triples = [
        to_triple(e, prompts[e.id], qs, known)
        for e, qs in zip(examples, steps)
        if all(s.request.key in known for s in qs)
    ]
    if len(triples) < len(examples):
        finished = sum(s.request.key in known for qs in steps for s in qs)
        _stop_at_budget(
            usage_summary(paths, cfg.backend, triples),
            spend,
            out_dir,
            len(triples),
            len(examples),
            len(paths) + finished,
            len(paths) + len(ROLES) * len(examples),
        )
    return triples


def _stop_at_budget(
    summary: dict,
    spend: Spend,
    out_dir: Path,
    done: int,
    questions: int,
    finished: int,
    requests: int,
) -> None:
    """Record how far generation got in usage.json (`done` of `questions` complete, `finished` of
    the `requests` known so far), then raise BudgetReached saying so."""
    caps = [
        f"generate.budget.{name}"
        for name in ("max_usd", "max_total_tokens")
        if getattr(spend.budget, name) is not None
    ]
    summary["stopped_by_budget"] = {
        "questions_complete": done,
        "questions": questions,
        "requests_finished": finished,
        "requests": requests,
    }
    write_json(out_dir / "usage.json", summary)
    raise BudgetReached(
        f"generate stopped at its budget: spent {spend.describe()}; {done} of {questions} "
        f"questions complete ({finished} of {requests} requests); every finished request is "
        f"kept in {out_dir / 'cache.sqlite'}. "
        f"Raise {' or '.join(caps)} and run again to continue from here"
    )
