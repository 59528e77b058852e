"""The judge on a budget, against a real `transformers serve` behind a counting proxy: it stops
at the cap keeping what it judged, a higher cap continues without asking anything twice, and
filter/usage.json holds the judge's tokens and USD per style."""

from __future__ import annotations

import pytest

from qrdistill.errors import BudgetReached
from qrdistill.quality import FilterConfig, filter_paths
from qrdistill.records import ReasoningPath
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.utils.io import read_json, read_jsonl_as
from served_model import openai_backend

pytestmark = pytest.mark.server


def test_judge_budget_stops_and_a_higher_cap_continues(
    served_model, proxy, examples_path, tmp_path
):
    backend = openai_backend(proxy.base_url, served_model.model, concurrency=1, max_tokens=8)
    paths_path = generate_paths(
        GenerateConfig(backend=backend, styles=["vanilla", "program"], show_progress=False),
        examples_path,
        tmp_path / "generate",
    )
    teacher_calls = len(proxy.completions())
    judge = backend.model_copy(
        update={"temperature": 0.0, "price_input_per_1m": 3.0, "price_output_per_1m": 15.0}
    ).model_dump()
    capped = FilterConfig(
        answer_check=False,
        judge=judge,
        judge_attempts=1,
        on_unparseable="keep",
        budget={"max_total_tokens": 1},
        show_progress=False,
    )
    out = tmp_path / "filter"
    with pytest.raises(BudgetReached, match=r"1 of 4 paths judged"):
        filter_paths(capped, paths_path, out)
    assert len(proxy.completions()) == teacher_calls + 1
    assert not (out / "judged.jsonl").exists()

    filter_paths(capped.model_copy(update={"budget": None}), paths_path, out)
    assert len(proxy.completions()) == teacher_calls + 4  # the first verdict came from the cache
    judged = read_jsonl_as(out / "judged.jsonl", ReasoningPath)
    usage = read_json(out / "usage.json")
    for style in ("vanilla", "program"):
        group = [p.judge.usage for p in judged if p.style == style]
        prompt = sum(u.prompt_tokens for u in group)
        completion = sum(u.completion_tokens for u in group)
        assert prompt > 0 and completion > 0
        assert usage["per_style"][style]["paths_judged"] == 2
        assert usage["per_style"][style]["usd"] == round((prompt * 3 + completion * 15) / 1e6, 6)
