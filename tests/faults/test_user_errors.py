"""Every user-facing error is one line with exit status 2, checked before any work starts: the
cases found by probing main as a new user would (issue 10)."""

from __future__ import annotations

import json

import pytest
import yaml
from fault_tools import assert_one_line_error
from test_pipeline import tiny_config


@pytest.fixture
def config(tmp_path, tiny_students):
    return tiny_config(tmp_path, tiny_students)


def test_config_that_is_not_utf8_names_file_and_line(cli, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("run_dir: runs/x\n# caf\xe9\ntrain: {}\n".encode("latin-1"))
    assert_one_line_error(*cli("run", bad, "--dry-run"), f"{bad}:2: not UTF-8")


def test_config_that_does_not_parse_names_its_line(cli, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("run_dir: runs/x\ntrain:\n  students: [a\n  epochs: 2\n")
    assert_one_line_error(*cli("run", bad, "--dry-run"), str(bad), "not valid YAML")


def test_a_directory_where_the_config_belongs(cli, tmp_path):
    assert_one_line_error(*cli("run", tmp_path, "--dry-run"), f"{tmp_path}: is a directory")


def test_validation_errors_of_several_keys_are_one_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  students: [{name: a, model: x}]\n  epochs: two\n  lr_typo: 1\n")
    assert_one_line_error(*cli("run", bad, "--dry-run"), "train.epochs", "train.lr_typo")


@pytest.mark.parametrize("skip_bad_lines", [False, True])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_data_file_that_is_not_utf8_names_file_and_line(
    cli, tmp_path, config, skip_bad_lines, suffix
):
    data = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        good = [
            json.dumps({"question": f"Is {i} even?", "answer": "yes"}).encode() for i in range(9)
        ]
        good[3] = '{"question": "caf\xe9?", "answer": "no"}'.encode("latin-1")
        data.write_bytes(b"\n".join(good) + b"\n")
    else:
        rows = [b"question,answer"] + [f"Is {i} even?,yes".encode() for i in range(9)]
        rows[4] = "caf\xe9?,no".encode("latin-1")
        data.write_bytes(b"\n".join(rows) + b"\n")
    overrides = [
        "--set",
        "data.task=strategyqa",
        "--set",
        "data.source={kind: local, path: %s}" % data,
        "--set",
        f"data.skip_bad_lines={str(skip_bad_lines).lower()}",
        "--set",
        "data.train_size=2",
        "--set",
        "data.test_size=2",
    ]
    code, lines = cli("generate", config, *overrides)
    if skip_bad_lines and suffix == ".jsonl":  # the bad line is skipped, named in a warning
        assert code == 0, lines
        assert (tmp_path / "run" / "generate" / "paths.jsonl").exists()
    else:
        assert_one_line_error(code, lines, f"{data}:{4 if suffix == '.jsonl' else 5}: not UTF-8")


def test_a_directory_where_the_data_file_belongs(cli, tmp_path, config):
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    assert_one_line_error(
        *cli("generate", config, "--set", "data.source={kind: local, path: %s}" % folder),
        f"{folder}: is a directory",
    )


def test_run_from_a_stage_that_does_not_exist(cli, tmp_path, config):
    assert_one_line_error(
        *cli("run", config, "--from", "bogus"), "--from 'bogus'", "choose one of data"
    )
    assert not (tmp_path / "run").exists()


def test_filter_threshold_out_of_range_is_checked_before_any_work(cli, tmp_path, config):
    assert_one_line_error(*cli("filter", config, "--threshold", "1.5"), "--threshold 1.5", "[0, 1]")
    assert not (tmp_path / "run").exists()  # no data prepared, nothing generated


def test_unknown_method_is_exit_2(cli, tmp_path, config):
    assert_one_line_error(
        *cli("train", config, "--method", "nope"), "--method nope", "no_peer, qr_distill"
    )
    assert not (tmp_path / "run").exists()


def test_report_on_a_missing_or_file_run_directory(cli, tmp_path):
    assert_one_line_error(*cli("report", tmp_path / "missing"), "does not exist")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(
        *cli("report", tmp_path / "file"), "is not a directory", "the run's config (.yaml)"
    )


def test_report_on_a_config_yaml_that_does_not_parse(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("report: {title: [unclosed\n")
    assert_one_line_error(*cli("report", run), f"{run / 'config.yaml'}:", "not valid YAML")


@pytest.mark.parametrize("summary", [{"accuracy": 1}, [1, 2], [{"method": "x"}], "text"])
def test_report_on_a_summary_of_the_wrong_shape_names_it_in_the_report(cli, tmp_path, summary):
    run = tmp_path / "run"
    (run / "evaluate").mkdir(parents=True)
    (run / "evaluate" / "summary.json").write_text(json.dumps(summary))
    code, lines = cli("report", run)
    assert code == 0, lines
    text = (run / "report" / "report.md").read_text()
    assert "Could not render this section: an artifact has an unexpected shape" in text


def test_an_error_message_with_brackets_is_printed_as_is(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"train": {"students": [{"name": "a", "model": "x"}], "epochs": "[/bold]"}})
    )
    line = assert_one_line_error(*cli("run", bad, "--dry-run"), "train.epochs")
    assert "[/bold]" in line
