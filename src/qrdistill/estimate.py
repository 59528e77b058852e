"""The dry run's spend estimate for the stages that call a model per request: generation (the
teacher) and the judge. Nothing is asked of any server and torch is not imported.

requests    what the stage still needs (requests already in its cache cost nothing again)
input       the real prompts, counted with the model's own tokenizer (`tokenizer.json`, without
            the chat template's few tokens) when it is on this machine, else chars/4 (stated)
output      expected: the mean completion of the requests already cached, when there are any,
            else the backend's expected_completion_tokens (a reasoning model's thinking and
            answer), else max_tokens; at most: max_tokens per request (which caps the
            thinking too). Reasoning tokens are output tokens; the estimate says which it used
USD         at the backend's prices (USD per million tokens); none without prices
spent       the usage already in the stage's cache, as counted against its budget
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qrdistill.config import RunConfig
from qrdistill.llm import BackendConfig, RequestCache, make_request
from qrdistill.llm.budget import BudgetConfig, cost_usd
from qrdistill.records import Example, Generation, ReasoningPath
from qrdistill.teacher.config import GenerateConfig
from qrdistill.utils.io import read_jsonl_as


@dataclass
class Estimate:
    stage: str
    backend: BackendConfig
    budget: BudgetConfig | None
    requests: int  # still to run
    requests_total: int
    input_tokens: int
    expected_output_tokens: int
    max_output_tokens: int
    counted_by: str  # how input tokens were counted
    spent: list[Generation]  # usage already cached
    expected_from: str  # where the expected output per request comes from
    note: str = ""

    def usd(self, output_tokens: int) -> float | None:
        return cost_usd(self.backend, self.input_tokens, output_tokens)


def _tokenizer_file(model: str) -> Path | None:
    """The model's tokenizer.json when it is on this machine; nothing is downloaded or converted."""
    from qrdistill.models.packaged import PACKAGED_MODELS, cache_dir

    if model in PACKAGED_MODELS:
        candidate = cache_dir() / "models" / model / "tokenizer.json"
        return candidate if candidate.is_file() else None
    if Path(model).is_dir():
        candidate = Path(model) / "tokenizer.json"
        return candidate if candidate.is_file() else None
    if model.count("/") == 1:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "tokenizer.json")
        return Path(found) if isinstance(found, str) else None
    return None


def token_counter(backend: BackendConfig) -> tuple[Callable[[str], int], str]:
    """(count tokens of a prompt, how they are counted)."""
    path = _tokenizer_file(backend.model)
    if path is not None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        return lambda text: len(tokenizer.encode(text).ids), "the model's tokenizer"
    return lambda text: max(1, round(len(text) / 4)), "chars/4 (no local tokenizer)"


def _estimate(
    stage: str,
    backend: BackendConfig,
    budget: BudgetConfig | None,
    prompts: dict[str, str],
    cache_path: Path,
    extra_input: dict[str, int] | None = None,
    note: str = "",
) -> Estimate:
    """`prompts`: cache key -> prompt of every request the stage needs; `extra_input`: cache key
    -> tokens a request's prompt may hold beyond its text (stand-ins for replies not known yet)."""
    extra_input = extra_input or {}
    with RequestCache(cache_path) as cache:
        cached = cache.get_many(list(prompts))
    todo = [key for key in prompts if key not in cached]
    count, counted_by = token_counter(backend)
    counts: dict[str, int] = {}
    for key in todo:
        if prompts[key] not in counts:
            counts[prompts[key]] = count(prompts[key])
    done = list(cached.values())
    if done:
        expected = round(sum(g.completion_tokens for g in done) / len(done))
        expected_from = f"the mean of {len(done):,} cached"
    elif backend.expected_completion_tokens is not None:
        expected = min(backend.expected_completion_tokens, backend.max_tokens)
        expected_from = (
            f"expected_completion_tokens = {backend.expected_completion_tokens:,} per request, "
            "thinking included, as configured: nothing cached yet"
        )
    else:
        expected = backend.max_tokens
        expected_from = "max_tokens per request: nothing cached yet"
    return Estimate(
        stage=stage,
        backend=backend,
        budget=budget,
        requests=len(todo),
        requests_total=len(prompts),
        input_tokens=sum(counts[prompts[key]] + extra_input.get(key, 0) for key in todo),
        expected_output_tokens=expected * len(todo),
        max_output_tokens=backend.max_tokens * len(todo),
        counted_by=counted_by,
        spent=done,
        expected_from=expected_from,
        note=note,
    )


def _train_examples(cfg: RunConfig) -> list[Example]:
    written = Path(cfg.run_dir) / "data" / "train.jsonl"
    if written.exists():
        return read_jsonl_as(written, Example)
    from qrdistill.data import split_examples

    return split_examples(cfg.data)[0]["train"]


def generate_estimate(cfg: RunConfig) -> Estimate:
    from qrdistill.teacher.generate import plan_jobs

    gen = cfg.generate
    examples = _train_examples(cfg)
    jobs = plan_jobs(gen, examples)
    prompts = {job.request.key: job.request.prompt for job in jobs}
    notes = []
    if (
        gen.samples_per_style > 1
        and gen.backend.kind == "openai"
        and gen.backend.samples_in_one_request
    ):
        notes.append(
            f"one request per sample; a server that takes `n` gets {len(prompts) // gen.samples_per_style} "
            "requests and bills each prompt once"
        )
    cache_path = Path(cfg.run_dir) / "generate" / "cache.sqlite"
    extra: dict[str, int] = {}
    if cfg.revthink:
        steps = _revthink_steps(gen, examples, cache_path)
        prompts.update((s.request.key, s.request.prompt) for s in steps)
        extra = {s.request.key: s.unknown_tokens for s in steps}
        notes.append(
            f"with RevThink's {len(steps)} requests (3 per question); each reply a later one "
            "quotes and not cached yet is counted as max_tokens long (an upper bound)"
        )
    return _estimate(
        "generate",
        gen.backend,
        gen.budget,
        prompts,
        cache_path,
        extra_input=extra,
        note="; ".join(notes),
    )


def _revthink_steps(gen: GenerateConfig, examples: list[Example], cache_path: Path) -> list:
    """RevThink's requests (qrdistill.teacher.revthink.question_steps), their prompts filled
    with the replies already cached, as generation would fill them, a round per request."""
    from qrdistill.llm.thinking import separate
    from qrdistill.tasks import get_task
    from qrdistill.teacher.revthink import ROLES, question_steps

    prompts = {e.id: get_task(e.task).build_prompt(e) for e in examples}
    known: dict[str, Generation] = {}
    with RequestCache(cache_path) as cache:
        for _ in ROLES:
            steps = [s for e in examples for s in question_steps(gen, e, prompts[e.id], known)]
            cached = cache.get_many([s.request.key for s in steps if s.unknown_tokens == 0])
            known.update((key, separate(g, gen.backend)) for key, g in cached.items())
    return [s for e in examples for s in question_steps(gen, e, prompts[e.id], known)]


def judge_estimate(cfg: RunConfig) -> Estimate:
    """From the generated paths when they are there; before generation, an upper bound: every
    path judged (the answer check drops the wrong ones first), each as long as the teacher's
    max_tokens, one attempt each (an unreadable verdict is asked again)."""
    from qrdistill.quality.judge import judge_prompt
    from qrdistill.teacher.generate import job_path, plan_jobs

    flt = cfg.filter
    paths_file = Path(cfg.run_dir) / "generate" / "paths.jsonl"
    extra = 0
    if paths_file.exists():
        paths = [
            p for p in read_jsonl_as(paths_file, ReasoningPath) if p.correct or not flt.answer_check
        ]
        note = f"the {len(paths)} generated paths that pass the answer check; first attempts"
    else:
        paths = [
            # the request key is a distinct stand-in text; its length is counted as max_tokens
            job_path(job, job.request.key)
            for job in plan_jobs(cfg.generate, _train_examples(cfg))
        ]
        extra = cfg.generate.backend.max_tokens
        note = "before generation: every path judged, each path max_tokens long (an upper bound)"
    prompts = {}
    for path in paths:
        prompt = judge_prompt(flt.template, path)
        prompts[make_request(flt.judge, prompt, 0, path.id).key] = prompt
    estimate = _estimate(
        "filter (judge)",
        flt.judge,
        flt.budget,
        prompts,
        Path(cfg.run_dir) / "filter" / "cache.sqlite",
        extra_input=dict.fromkeys(prompts, extra),
        note=note,
    )
    return estimate


def estimates(cfg: RunConfig, stages: tuple[str, ...] = ("generate", "filter")) -> list[Estimate]:
    found = []
    if "generate" in stages:
        found.append(generate_estimate(cfg))
    if "filter" in stages and cfg.filter.judge_enabled and cfg.filter.judge_scoring == "generate":
        found.append(judge_estimate(cfg))
    return found


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def estimate_lines(found: list[Estimate]) -> list[str]:
    """One line per stage (a log keeps it whole), then the notes."""
    lines = ["Estimated spend (dry run: nothing is asked of any server):"]
    for e in found:
        spent_in = sum(g.prompt_tokens for g in e.spent)
        spent_out = sum(g.completion_tokens for g in e.spent)
        spent_reasoning = sum(g.reasoning_tokens for g in e.spent)
        spent_usd = cost_usd(e.backend, spent_in, spent_out)
        caps = []
        if e.budget is not None and e.budget.max_usd is not None:
            caps.append(f"${e.budget.max_usd:g}")
        if e.budget is not None and e.budget.max_total_tokens is not None:
            caps.append(f"{e.budget.max_total_tokens:,} tokens")
        usd = (
            f"USD {_usd(e.usd(e.expected_output_tokens))} expected, "
            f"{_usd(e.usd(e.max_output_tokens))} at most"
            if e.usd(0) is not None
            else "USD: no prices set"
        )
        lines.append(
            f"  {e.stage} ({e.backend.model}): {e.requests:,} of {e.requests_total:,} requests to "
            f"run; input {e.input_tokens:,} tokens ({e.counted_by}); output "
            f"{e.expected_output_tokens:,} tokens expected, {e.max_output_tokens:,} at most "
            f"(expected from {e.expected_from}); {usd}; already spent {spent_in + spent_out:,} "
            "tokens"
            + (f" ({spent_reasoning:,} of them reasoning)" if spent_reasoning else "")
            + (f" ({_usd(spent_usd)})" if spent_usd is not None else "")
            + f"; budget {' or '.join(caps) or 'none'}"
        )
    lines += [f"  {e.stage}: {e.note}" for e in found if e.note]
    return lines
