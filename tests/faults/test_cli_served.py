"""The teacher and the judge through the CLI, against a real `transformers serve` behind a
counting proxy: a budget stop's exit status and continue command, the dry run's estimate read
from the cache (and its upper bound before generation), and the API key kept out of everything a
run writes or logs."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fault_tools import run_continue_command, served_backend, subprocess_env

from qrdistill.cli import main
from qrdistill.config import load_run_config
from qrdistill.data import split_examples
from qrdistill.estimate import generate_estimate
from qrdistill.llm import RequestCache
from qrdistill.records import Example
from qrdistill.teacher.generate import plan_jobs
from qrdistill.utils.io import read_json, read_jsonl_as

pytestmark = pytest.mark.server

QUESTIONS = [
    ("q1", "Tom has 3 apples and buys 2 more. How many apples does he have now?", "5"),
    ("q2", "A box holds 4 pens. How many pens are in 3 boxes?", "12"),
    ("q3", "Ann reads 6 pages a day. How many pages does she read in 2 days?", "12"),
    ("q4", "A bus has 9 seats and 4 are taken. How many are free?", "5"),
]
PRICES = {"price_input_per_1m": 1.0, "price_output_per_1m": 4.0}


def write_config(tmp_path: Path, backend: dict, **generate) -> Path:
    """Two training questions (of four) from a local file, styles vanilla and program, the same
    served model as teacher and judge, no answer check (a 135M teacher is rarely right)."""
    data = tmp_path / "questions.jsonl"
    data.write_text(
        "".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in QUESTIONS)
    )
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(tmp_path / "run"),
                "data": {
                    "task": "gsm8k",
                    "source": {"kind": "local", "path": str(data)},
                    "train_size": 2,
                    "dev_size": 0,
                    "test_size": 2,
                },
                "generate": {
                    "backend": backend,
                    "styles": ["vanilla", "program"],
                    "show_progress": False,
                    **generate,
                },
                "filter": {"answer_check": False, "judge": backend, "show_progress": False},
                "train": {"students": [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]},
            }
        )
    )
    return config


def edit_generate(config: Path, **changes) -> None:
    settings = yaml.safe_load(config.read_text())
    settings["generate"].update(changes)
    config.write_text(yaml.safe_dump(settings))


def estimate_line(out: str, stage: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(f"{stage} ("))


def test_budget_stop_exits_3_prints_the_continue_command_and_the_dry_run_reads_the_cache(
    served_model, proxy, tmp_path, capsys
):
    backend = served_backend(proxy, served_model, **PRICES)
    config = write_config(tmp_path, backend, budget={"max_total_tokens": 1})
    run = tmp_path / "run"
    stopped = subprocess.run(
        [sys.executable, "-m", "qrdistill", "generate", str(config)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )
    assert stopped.returncode == 3, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr
    lines = stopped.stderr.splitlines()
    reason = next(line for line in lines if line.startswith("budget reached: "))
    assert "0 of 2 questions complete (1 of 4 requests)" in reason
    command = next(line for line in lines if line.startswith("to continue: "))
    command = command.removeprefix("to continue: ")
    assert command == f"qrdistill generate {shlex.quote(str(config))}"
    assert len(proxy.completions()) == 1
    usage = read_json(run / "generate" / "usage.json")
    assert usage["stopped_by_budget"]["requests_finished"] == 1

    # The dry run reads what the stage's cache holds: 3 requests left, the one finished
    # request's completion as the expected length, its usage as already spent.
    cfg = load_run_config(config, [])
    jobs = plan_jobs(cfg.generate, read_jsonl_as(run / "data" / "train.jsonl", Example))
    with RequestCache(run / "generate" / "cache.sqlite") as cache:
        (done,) = cache.get_many([j.request.key for j in jobs]).values()
    capsys.readouterr()
    assert main(["generate", str(config), "--dry-run"]) == 0
    line = estimate_line(capsys.readouterr().out, "generate")
    assert "3 of 4 requests to run" in line
    assert f"output {3 * done.completion_tokens:,} tokens expected, {3 * 8:,} at most" in line
    spent = done.prompt_tokens + done.completion_tokens
    assert spent == usage["total"]["total_tokens"]
    usd = (done.prompt_tokens * 1.0 + done.completion_tokens * 4.0) / 1e6
    assert f"already spent {spent:,} tokens (${usd:,.4f}); budget 1 tokens" in line

    # Raise the cap (here: remove it) and run the printed command: the rest, nothing twice.
    edit_generate(config, budget=None)
    run_continue_command(command)
    sent = proxy.completions()
    assert len(sent) == 4
    assert len({(b["messages"][0]["content"], b["seed"]) for b in sent}) == 4

    # A third style: the expected output is the mean completion of the 4 cached requests.
    edit_generate(config, styles=["vanilla", "program", "backward"])
    with RequestCache(run / "generate" / "cache.sqlite") as cache:
        cached = list(cache.get_many([j.request.key for j in jobs]).values())
    assert len(cached) == 4
    mean = round(sum(g.completion_tokens for g in cached) / 4)
    total = sum(g.prompt_tokens + g.completion_tokens for g in cached)
    assert main(["generate", str(config), "--dry-run"]) == 0
    line = estimate_line(capsys.readouterr().out, "generate")
    assert "2 of 6 requests to run" in line
    assert f"output {2 * mean:,} tokens expected, 16 at most" in line
    assert f"already spent {total:,} tokens" in line


def test_judge_dry_run_is_an_upper_bound_before_generation_and_counts_the_real_paths_after(
    served_model, proxy, tmp_path, capsys
):
    backend = served_backend(proxy, served_model, **PRICES)
    config = write_config(tmp_path, backend)
    assert main(["filter", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    before = estimate_line(out, "filter (judge)")
    assert "4 of 4 requests to run" in before
    assert "before generation: every path judged, each path max_tokens long" in out
    assert proxy.completions() == []  # a dry run asks nothing

    assert main(["generate", str(config)]) == 0
    capsys.readouterr()
    assert main(["filter", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    after = estimate_line(out, "filter (judge)")
    assert "4 of 4 requests to run" in after
    assert "the 4 generated paths that pass the answer check; first attempts" in out
    assert len(proxy.completions()) == 4  # the generation only

    def input_tokens(line: str) -> int:
        return int(line.split("input ", 1)[1].split(" tokens", 1)[0].replace(",", ""))

    # Each real path is at most max_tokens long: the estimate before generation bounds it.
    assert input_tokens(before) >= input_tokens(after) > 0


def test_chars_over_4_when_the_models_tokenizer_is_not_on_this_machine(tmp_path, capsys):
    backend = {"kind": "openai", "model": "gpt-4o-mini", "api_key_env": None, "max_tokens": 50}
    config = write_config(tmp_path, backend)
    cfg = load_run_config(config, [])
    estimate = generate_estimate(cfg)
    assert estimate.counted_by == "chars/4 (no local tokenizer)"
    prompts = [
        j.request.prompt for j in plan_jobs(cfg.generate, split_examples(cfg.data)[0]["train"])
    ]
    assert len(prompts) == 4
    assert estimate.input_tokens == sum(max(1, round(len(p) / 4)) for p in prompts)
    assert main(["generate", str(config), "--dry-run"]) == 0
    line = estimate_line(capsys.readouterr().out, "generate")
    assert f"input {estimate.input_tokens:,} tokens (chars/4 (no local tokenizer))" in line
    assert "USD: no prices set" in line


def test_the_api_key_is_sent_and_never_written_or_logged(
    served_model, proxy, tmp_path, capsys, caplog, monkeypatch
):
    secret = "sk-qrdistill-test-7f3a9c0e51d24b6b"
    monkeypatch.setenv("QRDISTILL_TEST_KEY", secret)
    backend = served_backend(proxy, served_model, api_key_env="QRDISTILL_TEST_KEY")
    config = write_config(tmp_path, backend)
    caplog.set_level(logging.DEBUG)
    # -v: debug logging, the most a run ever logs.
    assert main(["-v", "filter", str(config)]) == 0  # runs data and generate first
    asked = [r for r in proxy.requests if r["path"].endswith("/chat/completions")]
    # 4 teacher requests, then the judge's: 4, and again for a verdict it could not read.
    assert len(asked) >= 8
    assert all(r["authorization"] == f"Bearer {secret}" for r in asked)

    run = tmp_path / "run"
    written = [p for p in run.rglob("*") if p.is_file()]
    names = {str(p.relative_to(run)) for p in written}
    assert {"config.yaml", "generate/cache.sqlite", "filter/cache.sqlite"} <= names
    assert "QRDISTILL_TEST_KEY" in (run / "config.yaml").read_text()  # the variable's name only
    assert [p for p in written if secret.encode() in p.read_bytes()] == []
    captured = capsys.readouterr()
    assert caplog.text and secret not in caplog.text
    assert secret not in captured.out + captured.err
