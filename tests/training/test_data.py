"""Per-student tokenisation, masking, EOS, truncation and method selection."""

from __future__ import annotations

import pytest
from training_paths import make_paths

from qrdistill.models import load_tokenizer, render_prompt
from qrdistill.training.config import TrainConfig
from qrdistill.training.data import (
    IGNORE,
    TrainItem,
    build_data,
    collate,
    encode,
    epoch_batches,
    select_items,
    shard,
)


def test_each_student_uses_its_own_tokenizer_prompt_masked_eos_appended(
    tiny_students, paths_file, make_config
):
    cfg = make_config()
    toks = {
        "llama": load_tokenizer(str(tiny_students[0])),
        "qwen": load_tokenizer(str(tiny_students[1])),
    }
    data = build_data(paths_file, cfg, toks)
    item = data.items[0]
    for name, tok in toks.items():
        enc = data.encoded[name][0]
        prompt = tok(render_prompt(tok, item.prompt), add_special_tokens=False)["input_ids"]
        response = tok(item.response, add_special_tokens=False)["input_ids"]
        assert enc.input_ids == prompt + response + [tok.eos_token_id]
        assert enc.labels == [IGNORE] * len(prompt) + response + [tok.eos_token_id]
    # The two tokenizers segment the same path differently: positions are not comparable.
    assert len(data.encoded["llama"][0].input_ids) != len(data.encoded["qwen"][0].input_ids)
    # The chat student's prompt is its chat template, the plain one's is not.
    assert "<|assistant|>" in toks["llama"].decode(data.encoded["llama"][0].input_ids)
    assert "<|assistant|>" not in toks["qwen"].decode(data.encoded["qwen"][0].input_ids)


def test_collate_pads_right_and_masks_padding(tiny_students, paths_file, make_config):
    tok = load_tokenizer(str(tiny_students[1]))
    data = build_data(paths_file, make_config(), {"qwen": tok})
    encs = [data.encoded["qwen"][i] for i in range(3)]
    batch = collate(encs, tok.pad_token_id)
    width = max(len(e.input_ids) for e in encs)
    assert batch["input_ids"].shape == (3, width)
    for row, e in enumerate(encs):
        n = len(e.input_ids)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["input_ids"][row, :n].tolist() == e.input_ids  # right padding
        assert (batch["labels"][row, n:] == IGNORE).all()


def test_overlength_truncates_prompt_from_the_left_never_the_answer(tiny_students):
    tok = load_tokenizer(str(tiny_students[1]))
    item = TrainItem(
        "p",
        "q",
        "s",
        "path",
        "Question: " + "many words here " * 40,
        "The answer is \\boxed{72}.",
        "",
    )
    full, truncated = encode(tok, item, 10_000, "truncate_prompt")
    assert not truncated
    response = tok(item.response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    enc, truncated = encode(tok, item, len(response) + 5, "truncate_prompt")
    assert truncated and len(enc.input_ids) == len(response) + 5
    assert enc.input_ids[-len(response) :] == response  # answer intact
    assert (
        enc.input_ids[:5]
        == full.input_ids[len(full.input_ids) - len(response) - 5 : -len(response)]
    )
    assert encode(tok, item, len(response) + 5, "drop") == (None, False)
    assert encode(tok, item, len(response), "truncate_prompt") == (
        None,
        False,
    )  # no room for a prompt


def test_overlength_counts_are_reported(tiny_students, paths_file, make_config):
    toks = {
        "llama": load_tokenizer(str(tiny_students[0])),
        "qwen": load_tokenizer(str(tiny_students[1])),
    }
    data = build_data(paths_file, make_config(max_length=40), toks)
    counts = data.counts
    assert counts["items"] + counts["items_dropped"] == 12
    assert sum(counts["truncated_prompt"].values()) > 0
    assert counts["items"] == len(data.items) == len(data.encoded["qwen"])
    assert all(len(e.input_ids) <= 40 for enc in data.encoded.values() for e in enc)


def test_method_selection(make_config):
    paths = make_paths()  # 4 questions x 3 styles; 2 backward paths are incorrect
    items, counts = select_items(paths, make_config())
    assert len(items) == 12 and counts["paths_used"] == 12  # qr_distill: the file as given
    items, _ = select_items(paths, make_config(objective="answer_aug"))
    assert len(items) == 10 and all(i.task == "path" for i in items)
    items, _ = select_items(paths, make_config(objective="sft_single", single_path_style="program"))
    assert len(items) == 4 and {i.style for i in items} == {"program"}
    assert len({i.question_id for i in items}) == 4
    items, _ = select_items(paths, make_config(objective="sft_single"))  # the default style
    assert len(items) == 4 and {i.style for i in items} == {"chain_of_thought"}
    # The preferred style, when incorrect, gives way to the first correct path of the question.
    cot_wrong = [
        p.model_copy(update={"correct": p.style != "chain_of_thought" or p.question_id != "q1"})
        for p in paths
    ]
    items, _ = select_items(cot_wrong, make_config(objective="sft_single"))
    assert {i.question_id: i.style for i in items}["q1"] != "chain_of_thought"
    items, _ = select_items(paths, make_config(objective="step_by_step"))
    assert len(items) == 8 and [i.task for i in items[:2]] == ["rationale", "answer"]
    assert items[1].response == paths[0].answer and "final answer" in items[1].prompt
    assert items[1].route_text == items[0].response  # both tasks route by the reasoning path


def test_batches_are_seeded_complete_and_length_grouped():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    a = epoch_batches(lengths, 2, seed=1, epoch=0, group_factor=4)
    assert a == epoch_batches(lengths, 2, seed=1, epoch=0, group_factor=4)
    assert a != epoch_batches(lengths, 2, seed=1, epoch=1, group_factor=4)
    assert sorted(i for b in a for i in b) == list(range(8))
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a)
    assert spread < 45  # long and short paths are not mixed in a batch
    assert shard([7], 1, 2) == [7] and shard([1, 2, 3, 4], 1, 2) == [2, 4]


def test_config_rejects_impossible_setups():
    with pytest.raises(ValueError, match="at least 2 students"):
        TrainConfig.model_validate({"students": [{"name": "a", "model": "x"}]})
    with pytest.raises(ValueError, match="nothing would be trained"):
        TrainConfig.model_validate(
            {
                "students": [{"name": "a", "model": "x", "frozen": True}],
                "routing": {"mode": "all"},
                "peer": {"enabled": False},
            }
        )
    with pytest.raises(ValueError, match="unique"):
        TrainConfig.model_validate(
            {"students": [{"name": "a", "model": "x"}, {"name": "a", "model": "y"}]}
        )


def test_the_old_method_key_names_its_new_name():
    from qrdistill.errors import ConfigError
    from qrdistill.utils.config import validate_config

    students = [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]
    with pytest.raises(
        ConfigError, match="'method' was renamed to 'objective'.*objective: sft_single"
    ):
        validate_config(TrainConfig, {"students": students, "method": "sft_single"}, "train")
    assert (
        validate_config(TrainConfig, {"students": students, "objective": "sft_single"}).objective
        == "sft_single"
    )
