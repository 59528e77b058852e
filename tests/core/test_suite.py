"""A suite: two tasks from one config, each a run of its own, through every method preset
(RevThink included); resume after a task's later stage is lost; the dry run per task and in
total; the joined report checked cell by cell against each task's results. Tiny random
students and a STAND-IN teacher (tests/served_model.py: scripted replies, named so)."""

from __future__ import annotations

import re
import shutil
import statistics

import pytest
import yaml

from qrdistill.cli import main
from qrdistill.config import load_run_config
from qrdistill.errors import ConfigError
from qrdistill.estimate import estimates
from qrdistill.evaluation.metrics import mean_with_interval
from qrdistill.methods import PRESETS
from qrdistill.reporting.document import Table
from qrdistill.reporting.paper import is_ablation
from qrdistill.reporting.suite import suite_document
from qrdistill.reporting.tables import pct, task_label
from qrdistill.suite import estimate_lines
from qrdistill.utils.io import read_json
from run_configs import tiny_pipeline_run
from served_model import StubOpenAIServer, openai_backend, stand_in_teacher

pytestmark = pytest.mark.server

TASKS = ("arc_challenge", "boolq")
# A baseline, RevThink and an ablation beside the full method, on every run of the tests; every
# preset in the slow run (about 80 s on one thread, twice the rest of this file).
CORE = ("qr_distill", "answer_aug", "revthink", "no_peer")


def suite_config(tmp_path, students, backend: dict, methods=tuple(PRESETS)) -> dict:
    config = tiny_pipeline_run(
        tmp_path / "run",
        students,
        backend,
        methods={m: {} for m in methods},
        # boolq's own data setting, to show an entry's `data` keys replace the shared ones.
        suite={"arc_challenge": {}, "boolq": {"data": {"test_size": 4}}},
    )
    del config["data"]["task"]  # each entry's task is its name
    return config


def markers(run) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob(".stage.json")}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(CORE, id="core"),
        pytest.param(tuple(PRESETS), id="every-preset", marks=pytest.mark.slow),
    ],
)
def finished_suite(request, tmp_path_factory, tiny_students):
    methods = request.param
    tmp_path = tmp_path_factory.mktemp("suite")
    run = tmp_path / "run"
    stub = StubOpenAIServer([])
    stub.default = (
        200,
        {},
        stand_in_teacher(stub, [run / task / "data" / "train.jsonl" for task in TASKS]),
    )
    backend = openai_backend(stub.base_url, concurrency=1).model_dump(mode="json")
    config = tmp_path / "suite.yaml"
    config.write_text(
        yaml.safe_dump(suite_config(tmp_path, tiny_students, backend, methods), sort_keys=False)
    )
    try:
        assert main(["run", str(config)]) == 0
        yield config, run, stub, methods
    finally:
        stub.close()


def test_each_task_is_a_run_of_its_own_through_every_method(finished_suite):
    _, run, stub, methods = finished_suite
    assert set(read_json(run / "suite.json")["entries"]) == set(TASKS)
    for task, test_size in zip(TASKS, (3, 4)):
        summary = read_json(run / task / "evaluate" / "summary.json")
        singles = {(r["method"], r["student"]) for r in summary if "ensemble" not in r["student"]}
        assert singles == {(m, s) for m in ("zero_shot", *methods) for s in ("a", "b")}
        assert {r["task"] for r in summary} == {task}
        assert all(r["n"] == test_size for r in summary)
        revthink = read_json(run / task / "train" / "revthink" / "summary.json")
        assert revthink["counts"]["items"] == 12  # RevThink's 3 tasks per question
        assert (run / task / "report" / "report.md").exists()
    # Per task: 4 questions x 2 styles, then RevThink's 3 requests per question.
    assert len(stub.completions()) == 2 * (4 * 2 + 3 * 4)
    assert (run / "suite_report.html").exists() and (run / "suite_report.md").exists()


def test_a_rerun_skips_finished_tasks_and_redoes_only_what_a_task_lost(finished_suite):
    config, run, stub, _ = finished_suite
    before, asked = markers(run), len(stub.completions())
    assert main(["run", str(config)]) == 0
    assert markers(run) == before

    # The second task lost a trained method and the end of its evaluation (an interrupted
    # suite); its finished models' answers are kept, as an interrupt keeps them.
    shutil.rmtree(run / "boolq" / "train" / "no_peer")
    (run / "boolq" / "evaluate" / "summary.json").unlink()
    assert main(["run", str(config)]) == 0
    after = markers(run)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"boolq/train/no_peer/.stage.json", "boolq/evaluate/.stage.json"}
    assert len(stub.completions()) == asked  # the teacher's answers came from the cache


def tables_by_caption(run) -> dict[str, Table]:
    return {
        block.caption: block for block in suite_document(run).blocks if isinstance(block, Table)
    }


def result_rows(run) -> dict[tuple[str, str, str], dict]:
    return {
        (r["method"], r["student"], task): r
        for task in TASKS
        for r in read_json(run / task / "evaluate" / "summary.json")
    }


def check_accuracy_table(table: Table, results: dict, tasks: tuple[str, ...]) -> int:
    """Every cell of a joined accuracy table against the per-task results; the cells checked."""
    labels = {task_label(t): t for t in tasks}
    checked = 0
    for row in table.rows:
        method = row[0]
        for header, cell in zip(table.headers[2:], row[2:]):
            student, label = header.split(" · ")
            if label == "avg":
                rows = [results[(method, student, t)] for t in tasks]
                mean, low, high = mean_with_interval(
                    [r["accuracy"] for r in rows],
                    [r["ci_low"] for r in rows],
                    [r["ci_high"] for r in rows],
                )
                assert cell == f"{pct(mean)} [{pct(low)}, {pct(high)}]"
                assert low <= mean <= high
            else:
                assert cell == pct(results[(method, student, labels[label])]["accuracy"])
            checked += 1
    return checked


def test_joined_table1_and_table2_match_the_per_task_results_cell_by_cell(finished_suite):
    _, run, _, methods = finished_suite
    found, results = tables_by_caption(run), result_rows(run)
    table1 = found["This run: methods and baselines (the paper's Table 1)"]
    main_rows = ["zero_shot", *(m for m in methods if not is_ablation(m))]
    assert [row[0] for row in table1.rows] == main_rows
    # methods x 2 students x (2 tasks + avg)
    assert check_accuracy_table(table1, results, TASKS) == len(main_rows) * 2 * 3
    table2 = found["This run: ablations (the paper's Table 2)"]
    ablation_rows = [*(m for m in methods if is_ablation(m)), "qr_distill"]
    assert [row[0] for row in table2.rows] == ablation_rows
    # Only ARC of the paper's Table 2 tasks is in this suite: no avg column, no boolq.
    assert table2.headers[2:] == ["a · ARC", "b · ARC"]
    assert check_accuracy_table(table2, results, ("arc_challenge",)) == len(ablation_rows) * 2
    # The paper's numbers stand beside them, labelled as the paper's.
    assert any(caption.startswith("Paper, Table 1") for caption in found)
    markdown = (run / "suite_report.md").read_text()
    assert "Mistral-7B-Instruct and Gemma-7B-it students and a Gemini-1.5-Pro teacher" in markdown
    assert "| " + " | ".join(table1.rows[1]) + " |" in markdown


def test_joined_table3_is_each_methods_recorded_epoch_time(finished_suite):
    _, run, _, methods = finished_suite
    table3 = tables_by_caption(run)["This run: training time per epoch"]
    assert len(table3.rows) == len(TASKS) * len(methods)
    for entry, method, epochs, seconds, tokens, ratio in table3.rows:
        summary = read_json(run / entry / "train" / method / "summary.json")
        separate = read_json(run / entry / "train" / "answer_aug" / "summary.json")
        assert epochs == str(len(summary["epoch_seconds"])) == "1"
        assert seconds == f"{statistics.fmean(summary['epoch_seconds']):.2f}"
        trained = sum(v for k, v in summary["final"].items() if k.startswith("tokens/"))
        assert tokens == f"{trained:,.0f}"
        mine, theirs = summary["epoch_seconds"][0], separate["epoch_seconds"][0]
        assert ratio == f"{mine / theirs:.2f}"


def test_report_command_on_the_suite_config_or_its_folder_rebuilds_the_joined_report(
    finished_suite,
):
    config, run, _, _ = finished_suite
    (run / "suite_report.md").unlink()
    assert main(["report", str(config)]) == 0
    first = (run / "suite_report.md").read_text()
    assert main(["report", str(run)]) == 0
    assert (run / "suite_report.md").read_text() == first


# --------------------------------------------------------------------------- without training
def offline_suite(tmp_path, tiny_students, **extra) -> dict:
    backend = openai_backend(
        "http://127.0.0.1:9/v1",
        price_input_per_1m=1000.0,
        price_output_per_1m=4000.0,
        max_tokens=64,
    ).model_dump(mode="json")
    config = suite_config(tmp_path, tiny_students, backend)
    config.update(extra)
    return config


def test_dry_run_prints_per_task_and_total_spend(tmp_path, tiny_students, capsys):
    config = offline_suite(tmp_path, tiny_students, methods={"qr_distill": {}, "revthink": {}})
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--dry-run"]) == 0
    out = "".join(capsys.readouterr().out.split())  # unfolded, however rich wrapped it
    cfg = load_run_config(path)
    per_task = {name: estimates(task) for name, task in cfg.suite_configs().items()}
    for name, [generate] in per_task.items():
        assert generate.requests == 4 * 2 + 3 * 4  # paths, then RevThink's 3 per question
        assert f"{name}:generate(stub){generate.requests:,}requests" in out
    total = sum(e.requests for [e] in per_task.values())
    usd = sum(e.usd(e.expected_output_tokens) for [e] in per_task.values())
    tokens = sum(e.input_tokens for [e] in per_task.values())
    assert f"total(2of2tasks):generate(stub){total:,}requests,input{tokens:,}tokens" in out
    assert f"USD${usd:,.2f}expected" in out
    assert not (tmp_path / "run").exists()  # nothing written


def test_dry_run_names_a_task_whose_data_is_not_here_and_totals_the_rest(tmp_path, tiny_students):
    config = offline_suite(
        tmp_path,
        tiny_students,
        suite={"arc_challenge": {}, "anli": {"data": {"source": {"kind": "hub", "name": "x/y"}}}},
    )
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    lines = estimate_lines(load_run_config(path, ["methods={qr_distill: {}}"]))
    text = "\n".join(lines)
    assert re.search(r"anli: no estimate, its data cannot be read here: .*x/y", text)
    assert "total (1 of 2 tasks)" in text and "leaves out anli" in text


def test_a_single_task_config_has_no_suite_and_a_bad_entry_names_its_field(tmp_path, tiny_students):
    config = offline_suite(tmp_path, tiny_students)
    single = {k: v for k, v in config.items() if k != "suite"}
    path = tmp_path / "single.yaml"
    path.write_text(yaml.safe_dump(single))
    assert load_run_config(path).suite_configs() == {}
    path.write_text(yaml.safe_dump(config))
    cfg = load_run_config(path)
    boolq = cfg.suite_configs()["boolq"]
    assert (boolq.data.task, boolq.data.test_size, boolq.data.train_size) == ("boolq", 4, 4)
    assert boolq.run_dir == cfg.run_dir / "boolq" and boolq.suite == {}
    # `qrdistill train --method M`: an entry that lists its methods without M is left out.
    narrowed = load_run_config(path, ["suite.boolq.methods=[qr_distill]"])
    assert set(narrowed.only_methods(["no_peer"]).suite_configs()) == {"arc_challenge"}
    both = narrowed.only_methods(["qr_distill"]).suite_configs()
    assert {name: set(t.methods) for name, t in both.items()} == {
        "arc_challenge": {"qr_distill"},
        "boolq": {"qr_distill"},
    }
    for override, named in (
        ("suite.boolq.data.train_fraction=2", r"suite\.boolq.*train_fraction"),
        ("suite.boolq.data.tsk=boolq", r"suite\.boolq.*unknown key 'data\.tsk'"),
        ("suite.boolq.train={epochs: zero}", r"suite\.boolq.*train\.epochs"),
        ("suite.nope={}", r"suite\.nope: no task 'nope'"),
        ("suite.boolq.methods=[qr_distill, mine]", r"suite\.boolq\.methods.*not among them: mine"),
        ("suite={../up: {}}", r"suite\.\.\./up: a suite entry's name"),
    ):
        with pytest.raises(ConfigError, match=named):
            load_run_config(path, [override])


def test_sample_efficiency_sets_a_fraction_beside_all_of_the_data(tmp_path, tiny_students, capsys):
    """The joined report's sample-efficiency table from two entries' results (written here: no
    training needed to check the table)."""
    from qrdistill.reporting.suite import build_suite_report
    from qrdistill.suite import suite_manifest
    from qrdistill.utils.io import write_json

    config = offline_suite(
        tmp_path,
        tiny_students,
        suite={
            "arc_challenge": {},
            "arc_30": {"data": {"task": "arc_challenge", "train_fraction": 0.3, "train_size": 10}},
        },
    )
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    write_json(run / "suite.json", suite_manifest(load_run_config(path)))
    for entry, correct, train in (("arc_challenge", 2, 3), ("arc_30", 1, 3)):
        write_json(run / entry / "data" / "manifest.json", {"counts": {"train": train}})
        write_json(
            run / entry / "evaluate" / "summary.json",
            [
                {
                    "method": "qr_distill",
                    "student": "a",
                    "task": "arc_challenge",
                    "n": 3,
                    "correct": correct,
                    "accuracy": correct / 3,
                    "ci_low": 0.0,
                    "ci_high": 1.0,
                }
            ],
        )
    build_suite_report(run)
    table = tables_by_caption(run)["This run: arc_challenge, accuracy %"]
    assert table.headers == ["method", "paper row", "a · arc_30", "a · ARC"]
    assert table.rows == [["qr_distill", "QR-Distill", pct(1 / 3), pct(2 / 3)]]
    assert "arc_30: 30 % of the training questions (3)" in (run / "suite_report.md").read_text()
    # ... beside the paper's own sample-efficiency figures on Date, labelled as the paper's.
    paper = next(t for c, t in tables_by_caption(run).items() if "Paper, sample efficiency" in c)
    assert paper.headers[1:3] == ["Mistral-7B · 30 %", "Mistral-7B · 100 %"]
    assert paper.rows[1][:3] == ["QR-Distill", "56.80", "73.37"]


def test_over_several_seeds_a_cell_is_mean_and_sd_and_the_average_is_over_seed_averages():
    from qrdistill.reporting.suite import average_cell, seeds_cell

    # seeds.json rows: per seed values, their mean as `accuracy` and sample sd.
    arc = {"accuracy": 0.5, "sd": 0.1, "values": [0.4, 0.6]}
    boolq = {"accuracy": 0.7, "sd": 0.0, "values": [0.7, 0.7]}
    assert seeds_cell(arc) == "50.00 ± 10.00"
    # Seed averages 0.55 and 0.65: mean 0.60, sd 0.0707.
    assert average_cell([arc, boolq]) == "60.00 ± 7.07"
    single = {"accuracy": 0.5, "sd": None, "ci_low": 0.4, "ci_high": 0.6}
    assert seeds_cell(single) == "50.00"
    assert (
        average_cell([single, single])
        == f"50.00 [{pct(0.5 - 0.1 / 2**0.5)}, {pct(0.5 + 0.1 / 2**0.5)}]"
    )
