"""Teacher on a budget, against a real `transformers serve` (SmolLM2) behind a counting proxy:
several samples per style (the server ignores `n`: the fallback), a budget that stops generation
and a higher one that continues it without repeating a request, and the dry run's estimate.
One STUB, named so: a server that does answer `n` choices, which `transformers serve` cannot."""

from __future__ import annotations

import pytest
import yaml

from qrdistill.errors import BudgetReached
from qrdistill.llm import RequestCache
from qrdistill.llm.budget import BudgetConfig
from qrdistill.records import Example, ReasoningPath
from qrdistill.teacher import GenerateConfig, generate_paths
from qrdistill.teacher.generate import plan_jobs
from qrdistill.utils.io import read_json, read_jsonl_as
from run_configs import small_run
from served_model import StubOpenAIServer, chat_reply, openai_backend

pytestmark = pytest.mark.server


def test_samples_per_style_against_a_server_that_ignores_n(
    served_model, proxy, examples_path, tmp_path, caplog
):
    cfg = GenerateConfig(
        backend=openai_backend(proxy.base_url, served_model.model, concurrency=1),
        styles=["vanilla"],
        samples_per_style=3,
        show_progress=False,
    )
    with caplog.at_level("INFO", logger="qrdistill.llm.openai"):
        paths = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)
    sent = proxy.completions()
    # The first prompt asks for n=3 and gets one choice: that is sample 0, samples 1 and 2 are
    # asked one by one, and from then on no request asks for n. Nothing is asked twice.
    assert [b.get("n") for b in sent] == [3, None, None, None, None, None]
    assert len({(b["messages"][0]["content"], b["seed"]) for b in sent}) == 6
    assert any("does not take `n` (asked for 3 choices, got 1)" in m for m in caplog.messages)
    assert [(p.question_id, p.sample_index) for p in paths] == [
        (q, i) for q in ("q1", "q2") for i in range(3)
    ]
    assert len({p.id for p in paths}) == 6 and all(p.text.strip() for p in paths)
    usage = read_json(tmp_path / "gen" / "usage.json")
    assert usage["per_style"]["vanilla"]["paths"] == 6

    # Downstream, every sample is a path of its own: the funnel counts them, training uses them.
    from qrdistill.quality import filter_paths
    from qrdistill.quality.config import FilterConfig
    from qrdistill.training.config import TrainConfig
    from qrdistill.training.data import select_items

    flt = FilterConfig(answer_check=False, judge_enabled=False, show_progress=False)
    kept = read_jsonl_as(
        filter_paths(flt, tmp_path / "gen" / "paths.jsonl", tmp_path / "flt"), ReasoningPath
    )
    funnel = read_json(tmp_path / "flt" / "funnel.json")
    assert funnel["per_style"]["vanilla"]["generated"] == 6 and len(kept) == 6
    train_cfg = TrainConfig.model_validate(
        {"students": [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]}
    )
    items, counts = select_items(kept, train_cfg)
    assert sorted(i.path_id for i in items) == sorted(p.id for p in paths)
    assert counts["styles"] == {"vanilla": 6}


def test_samples_in_one_request_false_never_asks_for_n(
    served_model, proxy, examples_path, tmp_path, caplog
):
    """The twin of the test above with the setting off: one request per sample from the first."""
    cfg = GenerateConfig(
        backend=openai_backend(
            proxy.base_url, served_model.model, concurrency=1, samples_in_one_request=False
        ),
        styles=["vanilla"],
        samples_per_style=3,
        show_progress=False,
    )
    with caplog.at_level("INFO", logger="qrdistill.llm.openai"):
        paths = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)
    sent = proxy.completions()
    assert [b.get("n") for b in sent] == [None] * 6
    assert len({(b["messages"][0]["content"], b["seed"]) for b in sent}) == 6
    assert not any("take `n`" in m for m in caplog.messages)  # nothing to find out
    assert [(p.question_id, p.sample_index) for p in paths] == [
        (q, i) for q in ("q1", "q2") for i in range(3)
    ]


def test_stub_server_that_takes_n_gets_one_request_per_prompt(examples_path, tmp_path):
    """STUB: `transformers serve` ignores `n`, so a server that answers n choices is scripted."""

    def choices(handler) -> dict:
        n = stub.requests[-1]["body"].get("n", 1)  # concurrency 1: the request being answered
        reply = chat_reply("x", prompt_tokens=30, completion_tokens=0)
        texts = [f"The answer is {5 + i}." + " pad" * i for i in range(n)]
        reply["choices"] = [
            {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": t}}
            for i, t in enumerate(texts)
        ]
        reply["usage"] = {"prompt_tokens": 30, "completion_tokens": 31, "total_tokens": 61}
        return reply

    stub = StubOpenAIServer([], default=(200, {}, choices))
    try:
        cfg = GenerateConfig(
            backend=openai_backend(stub.base_url, concurrency=1),
            styles=["vanilla", "program"],
            samples_per_style=3,
            show_progress=False,
        )
        paths = read_jsonl_as(generate_paths(cfg, examples_path, tmp_path / "gen"), ReasoningPath)
    finally:
        stub.close()
    sent = stub.completions()
    assert [b["n"] for b in sent] == [3, 3, 3, 3]  # 2 questions x 2 styles, 3 samples each
    assert len(paths) == 12
    by_prompt: dict = {}
    for p in paths:
        by_prompt.setdefault((p.question_id, p.style), []).append(p)
    for group in by_prompt.values():
        assert [p.sample_index for p in group] == [0, 1, 2]
        assert [p.text for p in group] == [
            "The answer is 5.",
            "The answer is 6. pad",
            "The answer is 7. pad pad",
        ]
        # The request's usage is shared out so that the samples add up to what was billed.
        assert sum(p.usage.prompt_tokens for p in group) == 30
        assert sum(p.usage.completion_tokens for p in group) == 31
        assert group[0].usage.completion_tokens < group[2].usage.completion_tokens


def test_budget_stops_generation_and_a_higher_cap_continues_without_repeats(
    served_model, proxy, examples_path, tmp_path
):
    backend = openai_backend(
        proxy.base_url,
        served_model.model,
        concurrency=1,
        temperature=0.0,
        price_input_per_1m=1.0,
        price_output_per_1m=4.0,
    )
    styles = ["vanilla", "program", "backward"]
    out = tmp_path / "gen"
    capped = GenerateConfig(
        backend=backend,
        styles=styles,
        budget=BudgetConfig(max_total_tokens=1),  # reached by the first request
        show_progress=False,
    )
    with pytest.raises(BudgetReached) as stop:
        generate_paths(capped, examples_path, out)
    assert len(proxy.completions()) == 1  # concurrency 1: nothing started once the cap was hit
    message = str(stop.value)
    assert "0 of 2 questions complete (1 of 6 requests)" in message
    assert "Raise generate.budget.max_total_tokens and run again" in message
    assert not (out / "paths.jsonl").exists()
    partial = read_json(out / "usage.json")
    assert partial["stopped_by_budget"] == {
        "questions_complete": 0,
        "questions": 2,
        "requests_finished": 1,
        "requests": 6,
    }
    first_tokens = partial["total"]["total_tokens"]
    assert f"{first_tokens:,} tokens of max_total_tokens 1" in message

    # A cap in USD of about two requests; the cached first request counts against it.
    jobs = plan_jobs(capped, read_jsonl_as(examples_path, Example))
    more = capped.model_copy(update={"budget": BudgetConfig(max_usd=2 * partial["total"]["usd"])})
    with pytest.raises(BudgetReached) as stop:
        generate_paths(more, examples_path, out)
    second = proxy.completions()[1:]
    with RequestCache(out / "cache.sqlite") as cache:
        finished = cache.get_many([j.request.key for j in jobs])
    assert 2 <= len(finished) <= 4 and len(second) == len(finished) - 1
    assert "of max_usd $" in str(stop.value)

    # No cap: the rest, each request once over the three runs.
    done = generate_paths(capped.model_copy(update={"budget": None}), examples_path, out)
    sent = proxy.completions()
    assert len(sent) == 6
    assert len({(b["messages"][0]["content"], b["seed"]) for b in sent}) == 6
    paths = read_jsonl_as(done, ReasoningPath)
    usage = read_json(out / "usage.json")
    assert "stopped_by_budget" not in usage
    assert usage["total"]["total_tokens"] == sum(
        p.usage.prompt_tokens + p.usage.completion_tokens for p in paths
    )
    for style in styles:
        group = [p for p in paths if p.style == style]
        prompt = sum(p.usage.prompt_tokens for p in group)
        completion = sum(p.usage.completion_tokens for p in group)
        assert usage["per_style"][style]["usd"] == round((prompt * 1.0 + completion * 4.0) / 1e6, 6)


def test_budget_overspend_is_at_most_concurrency_requests_when_samples_go_one_by_one(
    served_model, proxy, examples_path, tmp_path
):
    """Concurrency 2, 3 samples per prompt, a server that ignores `n`: the samples it did not
    answer are further requests, and they wait for the budget like any other."""
    concurrency = 2
    cfg = GenerateConfig(
        backend=openai_backend(proxy.base_url, served_model.model, concurrency=concurrency),
        styles=["vanilla", "program"],
        samples_per_style=3,
        budget=BudgetConfig(max_total_tokens=1),  # reached by the first request to finish
        show_progress=False,
    )
    out = tmp_path / "gen"
    with pytest.raises(BudgetReached):
        generate_paths(cfg, examples_path, out)
    stopped = proxy.completions()
    # Nothing starts once the first result is counted: what was paid for is that request and
    # the others in flight, at most `concurrency` in all (not concurrency x 3 samples).
    assert 1 <= len(stopped) <= concurrency
    assert [b.get("n") for b in stopped] == [3] * len(stopped)
    usage = read_json(out / "usage.json")
    assert usage["stopped_by_budget"]["requests_finished"] == len(stopped)

    # The twin without a cap, continuing: all 12 samples, still 2 at a time, none asked twice.
    done = generate_paths(cfg.model_copy(update={"budget": None}), examples_path, out)
    sent = proxy.completions()
    assert len(sent) == 12
    assert len({(b["messages"][0]["content"], b["seed"]) for b in sent}) == 12
    paths = read_jsonl_as(done, ReasoningPath)
    assert sorted((p.question_id, p.style, p.sample_index) for p in paths) == [
        (q, s, i) for q in ("q1", "q2") for s in ("program", "vanilla") for i in range(3)
    ]


def test_budget_in_usd_needs_prices():
    with pytest.raises(ValueError, match="budget.max_usd needs the prices generate.backend"):
        GenerateConfig(budget={"max_usd": 1.0})


def test_dry_run_estimates_requests_tokens_and_usd(served_model, proxy, tmp_path, capsys):
    from qrdistill.cli import main

    backend = {
        "kind": "openai",
        "model": served_model.model,
        "base_urls": [proxy.base_url],
        "api_key_env": None,
        "max_tokens": 100,
        "price_input_per_1m": 2.0,
        "price_output_per_1m": 10.0,
    }
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            small_run(
                tmp_path / "run",
                backend,
                generate={"samples_per_style": 2, "budget": {"max_usd": 0.5}},
                filter={"judge": backend},
            )
        )
    )
    capsys.readouterr()
    assert (
        main(["generate", str(config), "--dry-run", "--set", "generate.show_progress=false"]) == 0
    )
    out = capsys.readouterr().out
    assert proxy.requests == [] or all(
        not r["path"].endswith("completions") for r in proxy.requests
    )
    assert not (tmp_path / "run").exists()  # a dry run writes nothing

    from qrdistill.config import load_run_config
    from qrdistill.estimate import generate_estimate, token_counter

    cfg = load_run_config(config, [])
    estimate = generate_estimate(cfg)
    count, how = token_counter(cfg.generate.backend)
    assert how == "the model's tokenizer"  # the served folder holds tokenizer.json
    assert estimate.requests == estimate.requests_total == 3 * 2 * 2
    assert estimate.max_output_tokens == 12 * 100 == estimate.expected_output_tokens
    assert estimate.usd(estimate.max_output_tokens) == pytest.approx(
        (estimate.input_tokens * 2.0 + 1200 * 10.0) / 1e6
    )
    line = next(line for line in out.splitlines() if line.strip().startswith("generate ("))
    assert "12 of 12 requests to run" in line and "budget $0.5" in line
    assert f"input {estimate.input_tokens:,} tokens (the model's tokenizer)" in line
    assert f"${estimate.usd(1200):,.4f} at most" in line
    assert "a server that takes `n` gets 6 requests" in out
    assert sum(count(job_prompt) for job_prompt in _prompts(cfg)) == estimate.input_tokens


def _prompts(cfg) -> list[str]:
    from qrdistill.data import split_examples

    jobs = plan_jobs(cfg.generate, split_examples(cfg.data)[0]["train"])
    return [job.request.prompt for job in jobs]
