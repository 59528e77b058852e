"""What an interrupted or budget-stopped command tells the user to run next, and why it is right:
a forced run forgets its forced stages as it starts, so the plain command continues it."""

from __future__ import annotations

from qrdistill.cli import continue_command
from qrdistill.config import load_run_config
from qrdistill.pipeline import Pipeline


def test_continue_command_drops_from_and_force_and_keeps_the_rest():
    assert continue_command(["run", "my run.yaml", "--from", "train", "--set", "a=1"]) == (
        "qrdistill run 'my run.yaml' --set a=1"
    )
    assert continue_command(["run", "c.yaml", "--from=generate"]) == "qrdistill run c.yaml"
    assert continue_command(["filter", "c.yaml", "--force", "--threshold", "0.8"]) == (
        "qrdistill filter c.yaml --threshold 0.8"
    )


def test_a_forced_run_forgets_the_forced_stages_before_running_any(tmp_path):
    cfg = load_run_config(None, [f"run_dir={tmp_path}"])
    layout = Pipeline(cfg).layout
    for folder in (layout.data, layout.generate, layout.filter, layout.evaluate):
        folder.mkdir(parents=True)
        (folder / ".stage.json").write_text("{}")
    method = layout.train(next(iter(cfg.methods)))
    (method / "students").mkdir(parents=True)
    (method / ".stage.json").write_text("{}")
    unfinished = layout.train("never_finished")
    (unfinished / "checkpoints").mkdir(parents=True)

    Pipeline(cfg, from_stage="filter")._forget_forced(("data", "generate", "filter", "train"))
    assert (layout.data / ".stage.json").exists() and (layout.generate / ".stage.json").exists()
    assert not (layout.filter / ".stage.json").exists()
    assert not method.exists()  # a finished method is retrained from scratch
    assert (unfinished / "checkpoints").exists()  # not one of the run's methods: untouched
    assert (layout.evaluate / ".stage.json").exists()  # not among the stages this command runs
