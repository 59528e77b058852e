"""Run requests through a backend with the cache in front: shared by the teacher and the judge."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tqdm.auto import tqdm

from qrdistill.llm.budget import Spend
from qrdistill.llm.cache import RequestCache
from qrdistill.llm.config import BackendConfig
from qrdistill.llm.request import Request
from qrdistill.llm.thinking import separate, unseparated
from qrdistill.records import Generation

log = logging.getLogger(__name__)


def run_cached(
    requests: list[Request],
    cache: RequestCache,
    make_backend: Callable[[], object],
    *,
    backend: BackendConfig,
    desc: str,
    show_progress: bool = True,
    spend: Spend | None = None,
) -> dict[str, Generation]:
    """Completions for every request, by key: cached ones are read back, the rest are run and
    each is committed to the cache the moment it finishes.

    The backend is made only when something is missing, so a fully cached rerun (e.g. filtering
    again at another threshold) loads no model and contacts no server.

    With `spend`, every completion (cached ones too) is counted, and once its budget is reached
    no further request starts: the ones in flight finish and are kept, and the result lacks the
    requests never started (the caller sees what is missing and says so).

    The cache keeps completions as the model sent them; every one returned has its thinking
    told apart from its answer by `backend`'s settings (`qrdistill.llm.thinking`).
    """
    results = cache.get_many([r.key for r in requests])
    if spend is not None:
        for key, generation in results.items():
            spend.add(key, generation)
    todo = list({r.key: r for r in requests if r.key not in results}.values())
    if todo and not (spend is not None and spend.reached):
        _run(todo, results, cache, make_backend, desc, show_progress, spend)
    _warn_unseparated(results.values(), backend)
    return {key: separate(generation, backend) for key, generation in results.items()}


def _run(
    todo: list[Request],
    results: dict[str, Generation],
    cache: RequestCache,
    make_backend: Callable[[], object],
    desc: str,
    show_progress: bool,
    spend: Spend | None,
) -> None:
    """Run what the cache lacks, putting each completion into `results` as it finishes."""
    engine = make_backend()
    stop = (lambda: spend.reached) if spend is not None else (lambda: False)
    total = len(results) + len(todo)
    with tqdm(
        total=total,
        initial=len(results),
        desc=desc,
        unit="req",
        disable=not show_progress,
        dynamic_ncols=True,
    ) as bar:
        for request, generation in engine.run(todo, stop=stop):
            cache.put(request.key, request.label, generation)
            results[request.key] = generation
            if spend is not None:
                spend.add(request.key, generation)
            bar.update(1)


def _warn_unseparated(generations, backend: BackendConfig) -> None:
    count = sum(unseparated(g, backend) for g in generations)
    if count:
        opening, closing = backend.thinking_tags
        log.warning(
            "%d completion(s) of %s hold a reasoning model's thinking (a reasoning field, or a "
            "reply led by %s...%s) that thinking: none leaves in place; set thinking: auto to "
            "keep it apart from the answer (no new calls: the cache keeps both)",
            count,
            backend.model,
            opening,
            closing,
        )
