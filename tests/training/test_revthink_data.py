"""RevThink's training data: three items per consistent triple with a correct forward path, none
otherwise; and the method trained end to end by the same engine on tiny students."""

from __future__ import annotations

import pytest
from training_paths import make_paths

from qrdistill.errors import DataError
from qrdistill.records import REVTHINK_FILE, RevThinkTriple, Usage
from qrdistill.training import train
from qrdistill.training.data import build_data, revthink_items
from qrdistill.utils.io import read_json, read_jsonl, write_jsonl


def triple(q: int, consistent: bool | None) -> RevThinkTriple:
    """A stand-in for the teacher's backward data of make_paths' question q (a + b)."""
    a, b = 3 + q, 5 + 2 * q
    return RevThinkTriple(
        question_id=f"q{q}",
        task="gsm8k",
        prompt=f"Question: what is {a} + {b}? Put the answer in \\boxed{{}}.",
        gold=str(a + b),
        backward_question=f"A sum of two numbers is {a + b}; one is {b}. What is the other? "
        "Put the answer in \\boxed{}.",
        backward_reasoning=f"{a + b} - {b} = {a}. The answer is \\boxed{{{a}}}.",
        consistency="stand-in verdict",
        consistent=consistent,
        usage={"backward_question": Usage(prompt_tokens=3, completion_tokens=4)},
    )


def test_three_items_per_consistent_triple_and_none_for_the_rest(make_config):
    cfg = make_config(objective="revthink")
    paths = make_paths()
    # q3's forward paths are all wrong: its consistent triple has no forward reasoning to train on.
    paths = [p.model_copy(update={"correct": False}) if p.question_id == "q3" else p for p in paths]
    triples = [triple(0, True), triple(1, False), triple(2, None), triple(3, True)]
    items, counts = revthink_items(paths, triples, cfg)

    assert counts["triples_in_file"] == 4
    assert counts["triples_not_consistent"] == 2  # "inconsistent" and no verdict
    assert counts["triples_without_correct_forward"] == 1
    assert counts["triples_used"] == 1
    forward = next(p for p in paths if p.question_id == "q0" and p.style == "chain_of_thought")
    t = triples[0]
    assert [(i.task, i.prompt, i.response) for i in items] == [
        ("forward", forward.prompt, forward.text),
        (
            "backward_question",
            f"{forward.prompt}\n{cfg.backward_question_instruction}",
            t.backward_question,
        ),
        ("backward_reasoning", t.backward_question, t.backward_reasoning),
    ]
    assert {i.question_id for i in items} == {"q0"}
    assert counts["styles"] == {
        "chain_of_thought": 1,
        "revthink:backward_question": 1,
        "revthink:backward_reasoning": 1,
    }


def test_an_inconsistent_triple_gives_no_item(make_config):
    items, counts = revthink_items(
        make_paths(), [triple(q, False) for q in range(4)], make_config(objective="revthink")
    )
    assert items == [] and counts["triples_used"] == 0


def test_forward_reasoning_is_the_single_path_style_when_correct(make_config):
    cfg = make_config(objective="revthink", single_path_style="program")
    items, _ = revthink_items(make_paths(), [triple(1, True)], cfg)
    assert items[0].style == "program" and "def solve" in items[0].response


def test_build_data_reads_the_triples_beside_the_paths_and_says_when_they_are_missing(
    tmp_path, paths_file, make_config
):
    cfg = make_config(objective="revthink")
    with pytest.raises(DataError, match="revthink.jsonl not found"):
        build_data(paths_file, cfg, {})
    write_jsonl(paths_file.with_name(REVTHINK_FILE), [triple(1, False)])
    with pytest.raises(DataError, match="no trainable items"):
        build_data(paths_file, cfg, {})


def test_revthink_trains_end_to_end_as_plain_multitask_sft(tmp_path, paths_file, make_config):
    write_jsonl(
        paths_file.with_name(REVTHINK_FILE),
        [triple(0, True), triple(1, True), triple(2, False), triple(3, True)],
    )
    out = train(make_config(objective="revthink", epochs=2), paths_file, tmp_path / "revthink")
    summary = read_json(out / "summary.json")
    assert summary["objective"] == "revthink"
    assert summary["effective"] == {"routing_mode": "all", "peer": False}
    assert summary["counts"]["items"] == 9  # 3 consistent triples x 3 tasks
    assert summary["counts"]["triples_used"] == 3
    assert summary["steps"] == 6  # 9 items in batches of 4, two epochs
    rows = read_jsonl(out / "metrics.jsonl")
    assert all(r["route_rate/llama"] == 1.0 and r["route_rate/qwen"] == 1.0 for r in rows)
    assert rows[-1]["mutual"] == 0
    for student in ("llama", "qwen"):
        assert (out / "students" / student / "adapter_config.json").exists()
