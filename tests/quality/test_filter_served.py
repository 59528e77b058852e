"""Generate, judge and filter end to end with a real served model as teacher and judge."""

from __future__ import annotations

import pytest

from qrdistill.quality import FilterConfig, filter_paths
from qrdistill.records import ReasoningPath
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.utils.io import read_json, read_jsonl_as
from served_model import openai_backend

pytestmark = pytest.mark.server


def test_generate_judge_filter_and_refilter_with_no_new_calls(
    served_model, proxy, examples_path, tmp_path
):
    backend = openai_backend(proxy.base_url, served_model.model)
    gen_cfg = GenerateConfig(
        backend=backend, styles=["vanilla", "chain_of_thought"], show_progress=False
    )
    paths_path = generate_paths(gen_cfg, examples_path, tmp_path / "generate")
    generated = read_jsonl_as(paths_path, ReasoningPath)
    asked_teacher = len(proxy.completions())

    # SmolLM2-135M rarely gets the answer within 24 tokens, so the answer check is off here and
    # every path goes to the judge.
    cfg = FilterConfig(
        answer_check=False,
        judge=backend.model_dump(),
        judge_attempts=2,
        threshold=0.5,
        show_progress=False,
    )
    out = tmp_path / "filter"
    filter_paths(cfg, paths_path, out)
    judge_calls = len(proxy.completions()) - asked_teacher

    judged = read_jsonl_as(out / "judged.jsonl", ReasoningPath)
    assert [p.id for p in judged] == [p.id for p in generated]
    for path, before in zip(judged, generated):
        verdict = path.judge
        assert verdict.status in ("ok", "unparseable")
        if verdict.status == "ok":
            assert 0.0 <= verdict.score <= 1.0 and verdict.attempts in (1, 2)
            assert path.kept == (verdict.score >= 0.5)
        else:  # failed closed
            assert (verdict.score, verdict.attempts, path.kept) == (None, 2, False)
        assert path.model_dump(exclude={"judge", "kept"}) == before.model_dump(
            exclude={"judge", "kept"}
        )
    assert judge_calls == sum(p.judge.attempts for p in judged)
    kept = read_jsonl_as(out / "kept.jsonl", ReasoningPath)
    assert [p.id for p in kept] == [p.id for p in judged if p.kept]
    funnel = read_json(out / "funnel.json")
    assert funnel["total"]["generated"] == 4
    assert funnel["total"]["judge_kept"] == sum(p.kept for p in judged)
    assert (
        sum(s["judge_kept"] for s in funnel["per_style"].values()) == funnel["total"]["judge_kept"]
    )

    # Any threshold again: decided from stored scores, the server is not asked anything.
    asked = len(proxy.completions())
    for threshold in (0.0, 1.0):
        filter_paths(cfg, paths_path, out, threshold=threshold)
        kept = read_jsonl_as(out / "kept.jsonl", ReasoningPath)
        readable = [p for p in judged if p.judge.status == "ok"]
        assert len(kept) == sum(p.judge.score >= threshold for p in readable)
    assert len(proxy.completions()) == asked
