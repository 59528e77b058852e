"""The dry run's estimate for a reasoning teacher: before anything is cached it expects each
completion to be `expected_completion_tokens` long (thinking included) and says so; once some
are cached, their mean, reasoning tokens counted as output and named in what was spent. No
server is asked."""

from __future__ import annotations

import pytest

from qrdistill.config import RunConfig
from qrdistill.estimate import estimate_lines, generate_estimate
from qrdistill.llm import RequestCache
from qrdistill.records import Generation
from run_configs import small_run


def run_config(tmp_path, **backend) -> RunConfig:
    return RunConfig.model_validate(
        small_run(
            tmp_path / "run",
            {
                "kind": "openai",
                "model": "deepseek-r1-distill",
                "max_tokens": 8000,
                "price_input_per_1m": 1.0,
                "price_output_per_1m": 4.0,
                **backend,
            },
        )
    )


@pytest.mark.parametrize("expected", [1500, None])
def test_estimate_before_anything_is_cached_uses_the_expected_completion_length(expected, tmp_path):
    estimate = generate_estimate(run_config(tmp_path, expected_completion_tokens=expected))
    assert estimate.requests == 6 and estimate.max_output_tokens == 6 * 8000
    line = estimate_lines([estimate])[1]
    if expected is None:  # the null twin: max_tokens, as for any model
        assert estimate.expected_output_tokens == 6 * 8000
        assert "(expected from max_tokens per request: nothing cached yet)" in line
    else:
        assert estimate.expected_output_tokens == 6 * 1500
        assert "expected_completion_tokens = 1,500 per request, thinking included" in line
    assert f"output {estimate.expected_output_tokens:,} tokens expected, 48,000 at most" in line
    assert estimate.usd(estimate.expected_output_tokens) == pytest.approx(
        (estimate.input_tokens * 1.0 + estimate.expected_output_tokens * 4.0) / 1e6
    )


def test_estimate_once_some_are_cached_counts_their_reasoning_tokens(tmp_path):
    cfg = run_config(tmp_path, expected_completion_tokens=1500)
    from qrdistill.data import split_examples
    from qrdistill.teacher.generate import plan_jobs

    jobs = plan_jobs(cfg.generate, split_examples(cfg.data)[0]["train"])
    with RequestCache(tmp_path / "run" / "generate" / "cache.sqlite") as cache:
        for job, (completion, reasoning) in zip(jobs, [(3000, 2800), (1000, 900)]):
            generation = Generation("B", 50, completion, thinking="t", reasoning_tokens=reasoning)
            cache.put(job.request.key, job.request.label, generation)
    estimate = generate_estimate(cfg)
    assert estimate.requests == 4 and estimate.expected_output_tokens == 4 * 2000
    line = estimate_lines([estimate])[1]
    assert "(expected from the mean of 2 cached)" in line
    assert "already spent 4,100 tokens (3,700 of them reasoning) ($0.0161)" in line
