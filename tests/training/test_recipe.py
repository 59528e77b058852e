"""The training loop end to end on tiny students: outputs, determinism, exact resume, divergence,
baselines and ablations as one config change each, the module CLI."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from qrdistill.errors import TrainingDiverged
from qrdistill.models import load_causal_lm
from qrdistill.training import objective as objective_mod
from qrdistill.training import train
from qrdistill.training.recipe import Recipe
from qrdistill.utils.io import read_json, read_jsonl


def _weights(out) -> dict[str, torch.Tensor]:
    return {
        f"{name}/{k}": v
        for name in ("llama", "qwen")
        for k, v in load_file(out / "students" / name / "adapter_model.safetensors").items()
    }


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_qr_distill_run_writes_every_output(tmp_path, paths_file, make_config, tiny_students):

    out = train(make_config(epochs=2), paths_file, tmp_path / "run")
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))  # 12 paths / 4 = 3 steps x 2 epochs
    for key in (
        "epoch",
        "objective",
        "distill",
        "router",
        "entropy",
        "mutual",
        "loss/llama",
        "loss/qwen",
        "lr/peer",
        "tokens/llama",
        "tokens/qwen",
        "route_rate/llama",
        "tau",
    ):
        assert key in rows[-1]
    assert rows[-1]["tokens/llama"] > 0 and rows[-1]["tokens/qwen"] > 0
    routing = read_jsonl(out / "routing.jsonl")
    assert len(routing) == 2 * 3 * 2  # epoch x style x student
    assert all(r["total"] == 4 and 0 <= r["rate"] <= 1 and 0 < r["mean_prob"] < 1 for r in routing)
    assert all(r["band_low"] <= r["band_high"] and r["unrouted_share"] == 0 for r in routing)
    # The exploration share's paths reach both students, whatever the router says.
    assert all(r["all_share"] <= r["shared_share"] <= 1 for r in routing)
    # A preference must leave both the binomial band and the shadow router's null band.
    assert all(
        not r["outside_band"] or not r["band_low"] <= r["rate"] <= r["band_high"] for r in routing
    )
    summary = read_json(out / "summary.json")
    assert summary["counts"]["items"] == 12 and summary["steps"] == 6
    assert summary["effective"] == {"routing_mode": "learned", "peer": True}
    # Each student is its LoRA adapter (peft layout) and a pointer to its base, nothing more.
    for name, base in zip(("llama", "qwen"), tiny_students):
        folder = out / "students" / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "README.md",  # peft's model card
            "adapter_config.json",
            "adapter_model.safetensors",
            "student.json",
        ]
        assert read_json(folder / "student.json") == {
            "base": str(base),
            "adapter": True,
            "load_in_4bit": False,
            "dtype": "float32",
            "trust_remote_code": False,
        }
        assert read_json(folder / "adapter_config.json")["base_model_name_or_path"] == str(base)
        adapter = load_file(folder / "adapter_model.safetensors")
        assert adapter and all("lora_" in k for k in adapter)  # no base weight in it
        assert any("q_proj.lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())
        assert any("v_proj.lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
    assert ckpts == ["step-4", "step-6"]  # every 2 steps, keep the newest 2


def test_a_checkpoint_holds_the_trainable_state_only(tmp_path, paths_file, make_config):
    recipe = Recipe(make_config(max_steps=2), paths_file, tmp_path / "run").setup()
    recipe.run()
    model = recipe.acc.unwrap_model(recipe.model)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    step = tmp_path / "run" / "checkpoints" / "step-2"
    state = torch.load(step / "trainable.pt")
    extra = set(state) - set(trainable)
    assert set(trainable) <= set(state) and any(k.startswith("router.") for k in state)
    assert all(k.startswith(("router.", "peer.")) for k in extra)  # their buffers, if any
    students = [k for k in state if k.startswith("students.")]
    assert students and all(".lora_A." in k or ".lora_B." in k for k in students)
    payload = sum(v.numel() * v.element_size() for v in state.values())
    assert (step / "trainable.pt").stat().st_size < payload + 64 * 1024
    base = sum(p.numel() * p.element_size() for p in model.students.parameters())
    assert payload < 0.1 * base
    optimizer = torch.load(step / "optimizer.pt")
    assert len(optimizer["state"]) == len(trainable)  # Adam moments of trainable tensors only


def test_seeded_runs_are_identical_and_an_interrupted_run_resumes_exactly(
    tmp_path, paths_file, make_config, monkeypatch
):
    cfg = make_config(
        epochs=2, grad_accum=2, batch_size=2, checkpoint_every=2
    )  # 6 micro = 3 steps/epoch
    full = train(cfg, paths_file, tmp_path / "full")
    again = train(cfg, paths_file, tmp_path / "again")
    assert _same(_weights(full), _weights(again))

    original = Recipe.optimizer_step

    def crash_at_five(self, *args, **kwargs):
        if self.progress.step == 4:  # the 5th step, after the checkpoint at step 4
            raise KeyboardInterrupt("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Recipe, "optimizer_step", crash_at_five)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, paths_file, tmp_path / "resumed")
    assert read_json(tmp_path / "resumed" / "checkpoints" / "latest.json")["step"] == 4
    monkeypatch.setattr(Recipe, "optimizer_step", original)
    resumed = train(cfg, paths_file, tmp_path / "resumed", resume=True)
    assert _same(_weights(full), _weights(resumed))
    last = lambda out: torch.load(out / "checkpoints" / "step-6" / "trainable.pt")  # noqa: E731
    assert _same(last(full), last(resumed))  # router and peer modules too
    assert read_jsonl(full / "metrics.jsonl") == read_jsonl(resumed / "metrics.jsonl")
    assert read_jsonl(full / "routing.jsonl") == read_jsonl(resumed / "routing.jsonl")


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(
    tmp_path, paths_file, make_config, monkeypatch
):
    calls = {"n": 0}
    original = objective_mod.path_losses

    def poisoned(*args):
        calls["n"] += 1
        loss, count = original(*args)
        return (loss * float("nan") if calls["n"] > 4 else loss), count  # 2 students x 2 steps ok

    monkeypatch.setattr(objective_mod, "path_losses", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at optimizer step 3.*step-2"):
        train(make_config(epochs=2), paths_file, out)
    assert read_json(out / "checkpoints" / "latest.json")["step"] == 2
    assert (out / "checkpoints" / "step-2" / "trainable.pt").exists()


SWITCHES = {
    "no_routing": ({"routing__mode": "all"}, "all", True),
    "random_routing": ({"routing__mode": "random"}, "random", True),
    "no_peer": ({"peer__enabled": False}, "learned", False),
    "sft_single": ({"objective": "sft_single"}, "all", False),
    "answer_aug": ({"objective": "answer_aug"}, "all", False),
    "step_by_step": ({"objective": "step_by_step"}, "all", False),
}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_each_baseline_and_ablation_is_one_config_change(name, tmp_path, paths_file, make_config):
    change, routing, peer = SWITCHES[name]
    out = train(make_config(epochs=2, max_steps=2, **change), paths_file, tmp_path / name)
    summary = read_json(out / "summary.json")
    assert summary["effective"] == {"routing_mode": routing, "peer": peer}
    assert (
        summary["objective"] == change.get("objective", "qr_distill") and summary["method"] is None
    )
    assert summary["steps"] == 2
    expected_items = {"sft_single": 4, "answer_aug": 10, "step_by_step": 8}.get(name, 12)
    assert summary["counts"]["items"] == expected_items
    rows = read_jsonl(out / "metrics.jsonl")
    if routing == "all":
        assert all(r["route_rate/llama"] == 1.0 and r["route_rate/qwen"] == 1.0 for r in rows)
    assert (rows[-1]["mutual"] > 0) == peer


def test_frozen_student_is_not_updated(tmp_path, paths_file, make_config, tiny_students):
    from transformers import AutoModelForCausalLM

    cfg = make_config(max_steps=2)
    cfg.students[1].frozen = True
    out = train(cfg, paths_file, tmp_path / "frozen")
    # A frozen student's folder is a pointer to its base, and loads as exactly that model.
    assert [p.name for p in (out / "students" / "qwen").iterdir()] == ["student.json"]
    assert read_json(out / "students" / "qwen" / "student.json")["adapter"] is False
    frozen = load_causal_lm(str(out / "students" / "qwen"))[0].state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_students[1]).state_dict()
    assert frozen.keys() == base.keys() and all(torch.equal(frozen[k], base[k]) for k in base)
    assert "lr/qwen" not in read_jsonl(out / "metrics.jsonl")[-1]  # not in the optimizer


def test_logit_peer_with_a_shared_tokenizer_and_tensorboard(
    tmp_path, paths_file, make_config, tiny_students
):
    cfg = make_config(max_steps=2, peer__kind="logits", report_to="tensorboard")
    cfg.students[1].model = str(tiny_students[0])  # both share the llama tokenizer
    out = train(cfg, paths_file, tmp_path / "logits")
    assert read_jsonl(out / "metrics.jsonl")[-1]["mutual"] > 0
    assert list(out.rglob("events.out.tfevents*"))


def test_single_student_and_module_cli(tmp_path, paths_file, tiny_students, embed_cache):
    from qrdistill.training.__main__ import main

    config = tmp_path / "run.yaml"
    config.write_text(
        json.dumps(
            {
                "train": {
                    "students": [
                        {"name": "solo", "model": str(tiny_students[1]), "lora": {"r": 2}}
                    ],
                    "routing": {"mode": "all"},
                    "peer": {"enabled": False},
                    "batch_size": 6,
                    "progress": False,
                }
            }
        )
    )
    assert (
        main(
            [
                "--config",
                str(config),
                "--paths",
                str(paths_file),
                "--out",
                str(tmp_path / "solo"),
                "--set",
                "max_steps=1",
            ]
        )
        == 0
    )
    assert read_json(tmp_path / "solo" / "summary.json")["steps"] == 1
    assert (tmp_path / "solo" / "students" / "solo" / "adapter_config.json").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("students: [{name: a, model: x}]\nepochz: 3\n")
    assert (
        main(["--config", str(bad), "--paths", str(paths_file), "--out", str(tmp_path / "x")]) == 2
    )
