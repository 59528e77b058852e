"""Ctrl-C (SIGINT) on a real `qrdistill train` and `qrdistill evaluate` process (tiny random
students): exit status 130, the command that continues printed, and that command loses and
repeats nothing. Training continues from the optimizer step it stopped at (not from a periodic
checkpoint: there is none) and ends with the weights of an uninterrupted run; evaluation asks
only the questions not yet answered and ends with the predictions of an uninterrupted run.
test_interrupt_served.py is the same for `generate` against a real server."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal

import pytest
import torch
import yaml
from fault_tools import interrupt_when, run_continue_command
from safetensors.torch import load_file
from test_pipeline import tiny_config

from qrdistill.cli import main
from qrdistill.utils.interrupt import StopRequest
from qrdistill.utils.io import read_json, read_jsonl

METHOD = "qr_distill"


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, tiny_students):
    """A run directory whose data, generate and filter stages are done; its config trains with
    one path per step and no periodic checkpoint, and evaluates with long enough answers that a
    Ctrl-C lands mid-model."""
    tmp = tmp_path_factory.mktemp("interrupt")
    config = tiny_config(tmp, tiny_students)
    data = yaml.safe_load(config.read_text())
    data["data"]["test_size"] = 8
    data["train"].update(batch_size=1, epochs=3, checkpoint_every=1000)
    data["evaluate"] = {
        "max_new_tokens": 16,
        "batch_size": 1,
        "stop_on_loop": False,
        "ensembles": False,
    }
    data["methods"] = {METHOD: {}}
    data["zero_shot"] = False
    config.write_text(yaml.safe_dump(data))
    assert main(["filter", str(config)]) == 0
    return config, tmp / "run"


def copies(run, tmp_path) -> tuple:
    """Two copies of `run`: one for the uninterrupted reference, one to interrupt."""
    for name in ("reference", "interrupted"):
        shutil.copytree(run, tmp_path / name)
    return tmp_path / "reference", tmp_path / "interrupted"


def weights(folder) -> dict:
    """Every tensor a student folder saves (merged weights or an adapter), by file and name."""
    return {
        (f.name, k): v
        for f in sorted(folder.glob("*.safetensors"))
        for k, v in load_file(f).items()
    }


def lines(path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_ctrl_c_during_train_checkpoints_the_step_in_flight_and_the_rerun_repeats_none(
    filtered, tmp_path
):
    config, run = filtered
    reference, interrupted = copies(run, tmp_path)
    args = ["train", str(config), "--run-dir"]
    # One torch thread, as the interrupted and continued runs (OMP_NUM_THREADS=1): with two, sums
    # can differ in the last bits, and the comparison below is bit for bit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*args, str(reference)]) == 0
    finally:
        torch.set_num_threads(threads)
    metrics = interrupted / "train" / METHOD / "metrics.jsonl"

    command = interrupt_when([*args, str(interrupted)], lambda: lines(metrics) >= 2)
    assert command == shlex.join(["qrdistill", *args, str(interrupted)])
    total = read_json(reference / "train" / METHOD / "summary.json")["steps"]
    checkpoints = interrupted / "train" / METHOD / "checkpoints"
    stopped = read_json(checkpoints / "latest.json")["step"]
    # The step in flight finished, was logged, and is the one checkpointed (the only one).
    assert 2 <= stopped < total and lines(metrics) == stopped
    assert [p.name for p in checkpoints.glob("step-*")] == [f"step-{stopped}"]
    logged = metrics.read_text()

    result = run_continue_command(command)
    assert f"optimizer step {stopped} of {total} done" in result.stderr
    assert metrics.read_text().startswith(logged)  # the rows before the stop are kept
    assert read_jsonl(metrics) == read_jsonl(reference / "train" / METHOD / "metrics.jsonl")
    for student in ("a", "b"):
        want, got = (
            weights(root / "train" / METHOD / "students" / student)
            for root in (reference, interrupted)
        )
        assert want and want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want)


@pytest.fixture(scope="module")
def trained(filtered):
    """`filtered`, trained (two steps: evaluation needs trained students, not good ones)."""
    config, run = filtered
    trained_run = run.parent / "trained"
    shutil.copytree(run, trained_run)
    args = ["--run-dir", str(trained_run), "--set", "train.max_steps=2"]
    assert main(["train", str(config), *args]) == 0
    return config, trained_run, args[2:]


def test_ctrl_c_during_evaluate_keeps_the_answers_and_the_rerun_asks_only_the_rest(
    trained, tmp_path
):
    config, run, overrides = trained
    reference, interrupted = copies(run, tmp_path)
    args = ["evaluate", str(config), *overrides, "--run-dir"]
    assert main([*args, str(reference)]) == 0
    models = interrupted / "evaluate" / "models"

    def answered() -> dict[str, int]:
        """Questions answered so far, by model: those in partial files and finished models."""
        found = {p.name.split(".partial-")[0]: lines(p) for p in models.glob("*.partial-*.jsonl")}
        for done in models.glob("*.done.json"):
            found[done.name.removesuffix(".done.json")] = read_json(done)["n"]
        return found

    command = interrupt_when([*args, str(interrupted)], lambda: sum(answered().values()) >= 1)
    assert command == shlex.join(["qrdistill", *args, str(interrupted)])
    before = answered()
    partial = {p.name.split(".partial-")[0]: lines(p) for p in models.glob("*.partial-*.jsonl")}
    assert 1 <= sum(before.values()) < 2 * 8 and partial, before
    assert not (interrupted / "evaluate" / "predictions.jsonl").exists()

    result = run_continue_command(command)
    said = dict(re.findall(r"\w+/(\w+): (\d+) of 8 questions answered earlier", result.stderr))
    # Each model interrupted mid-way is asked only the questions it had not answered.
    assert {f"{METHOD}__{s}": int(n) for s, n in said.items()} == partial
    for name in set(before) - set(partial):  # finished before the Ctrl-C: not asked again
        assert f"{name.replace('__', '/')}: finished earlier" in result.stderr
    # The same answers, token for token (`model` names each copy's own folder). The promise for
    # log-probabilities is float tolerance: the continued run is a new process, and CPU kernels
    # may sum the same batch in another order there (seen: -5.0067534 against -5.0067530).
    continued = read_jsonl(interrupted / "evaluate" / "predictions.jsonl")
    uninterrupted = read_jsonl(reference / "evaluate" / "predictions.jsonl")
    ignored = {"model": None, "mean_logprob": None}
    assert [{**r, **ignored} for r in continued] == [{**r, **ignored} for r in uninterrupted]
    assert [r["mean_logprob"] for r in continued] == pytest.approx(
        [r["mean_logprob"] for r in uninterrupted], rel=0, abs=1e-5
    )
    assert read_json(interrupted / "evaluate" / "summary.json") == read_json(
        reference / "evaluate" / "summary.json"
    )
    assert not list(models.glob("*.partial-*"))


def test_a_second_ctrl_c_stops_at_once_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest("finishing the step") as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested  # the first only asks the loop to stop at its next boundary
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
