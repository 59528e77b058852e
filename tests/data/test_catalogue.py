"""The ready hub sources of the tasks with no packaged data, read through the real `datasets`
library from folders laid out like their hub repositories (written here, in the data sets' real
record formats), and the same records read as local JSONL files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from qrdistill.data import SourceConfig, load_source
from qrdistill.data.catalogue import HUB_SOURCES, source_block
from qrdistill.errors import DataError

# ChilleD/StrategyQA's record layout: `answer` is a bool, `facts` and `decomposition` lists.
STRATEGYQA = [
    {
        "qid": "4fd64bb6ce5b78ab20b6",
        "term": "Mixed martial arts",
        "description": "full contact combat sport",
        "question": "Is Mixed martial arts totally original from Roman Colosseum games?",
        "answer": False,
        "facts": ["Mixed Martial arts in the UFC takes place in an enclosed structure."],
        "decomposition": ["What is Mixed martial arts?", "Is it from the Colosseum?"],
    },
    {
        "qid": "2ad11bda7a9b4c3a5b4f",
        "term": "Frost",
        "description": "thin layer of ice",
        "question": "Is it common to see frost during some college commencements?",
        "answer": True,
        "facts": ["Some commencements happen in December."],
        "decomposition": ["When are commencements?", "Is there frost then?"],
    },
]

DATES = ["05/01/2021", "02/23/2021", "03/11/2021", "04/29/2021", "05/09/2021", "06/12/2021"]


def date_record(idx: int) -> dict:
    """One record as tasksource/bigbench stores date_understanding: the correct date first in
    `multiple_choice_targets`, and the question wrapped with its options in `inputs`."""
    question = f"Yesterday was April {idx + 1}, 2021. What is the date today in MM/DD/YYYY?"
    inputs = "Q: " + question + "".join(f"\n  choice: {d}" for d in DATES) + "\nA:"
    return {
        "idx": idx,
        "inputs": inputs,
        "targets": [DATES[0]],
        "multiple_choice_targets": DATES,
        "multiple_choice_scores": [1, 0, 0, 0, 0, 0],
    }


def hub_folder(root: Path, records: list[dict], config: str | None = None) -> Path:
    """A folder laid out like a hub data set repository: parquet shards per split, and for a
    named config the README `configs:` block that maps it to its folder, as the hub has it."""
    import datasets

    if config is None:
        shard = root / "data" / "train-00000-of-00001.parquet"
    else:
        shard = root / config / "train-00000-of-00001.parquet"
        card = {
            "configs": [
                {
                    "config_name": config,
                    "data_files": [{"split": "train", "path": f"{config}/train-*"}],
                }
            ]
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "README.md").write_text("---\n" + yaml.safe_dump(card) + "---\n")
    shard.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(records).to_parquet(str(shard))
    return root


def at(source: SourceConfig, folder: Path) -> SourceConfig:
    return source.model_copy(update={"name": str(folder)})


def test_strategyqa_hub_source_reads_the_release_layout(tmp_path) -> None:
    folder = hub_folder(tmp_path / "StrategyQA", STRATEGYQA)
    examples = load_source(at(HUB_SOURCES["strategyqa"], folder), "strategyqa").examples
    assert [(e.id, e.question, e.gold) for e in examples] == [
        (
            "4fd64bb6ce5b78ab20b6",
            "Is Mixed martial arts totally original from Roman Colosseum games?",
            "no",
        ),
        (
            "2ad11bda7a9b4c3a5b4f",
            "Is it common to see frost during some college commencements?",
            "yes",
        ),
    ]


def test_date_understanding_hub_source_unwraps_the_question_and_shuffles_the_options(
    tmp_path,
) -> None:
    records = [date_record(idx) for idx in range(30)]
    folder = hub_folder(tmp_path / "bigbench", records, config="date_understanding")
    source = at(HUB_SOURCES["date_understanding"], folder)
    examples = load_source(source, "date_understanding").examples
    first = examples[0]
    assert first.id == "0"
    assert first.question == "Yesterday was April 1, 2021. What is the date today in MM/DD/YYYY?"
    assert sorted(first.choices) == sorted(DATES)
    for example in examples:  # the gold letter follows the correct date wherever it moved
        assert example.choices[ord(example.gold) - ord("A")] == "05/01/2021"
    # Shuffled per question, not left with the correct date always first ...
    assert len(Counter(example.gold for example in examples)) >= 4
    # ... and fixed: the same data set gives the same options on every load.
    assert load_source(source, "date_understanding").examples == examples


def test_local_jsonl_with_the_catalogue_fields_gives_the_hub_examples(tmp_path) -> None:
    records = [date_record(idx) for idx in range(5)]
    hub = load_source(
        at(
            HUB_SOURCES["date_understanding"],
            hub_folder(tmp_path / "bb", records, "date_understanding"),
        ),
        "date_understanding",
    ).examples
    local_file = tmp_path / "date_understanding.jsonl"
    local_file.write_text("".join(json.dumps(record) + "\n" for record in records))
    local = load_source(
        SourceConfig(
            kind="local", path=local_file, fields=HUB_SOURCES["date_understanding"].fields
        ),
        "date_understanding",
    ).examples
    strip = lambda examples: [e.model_dump(exclude={"metadata"}) for e in examples]  # noqa: E731
    assert strip(local) == strip(hub)


def test_anli_hub_source_maps_the_integer_label(tmp_path) -> None:
    records = [
        {
            "uid": "a1",
            "premise": "A dog runs.",
            "hypothesis": "An animal moves.",
            "label": 0,
            "reason": "",
        },
        {
            "uid": "a2",
            "premise": "A dog runs.",
            "hypothesis": "A cat sleeps.",
            "label": 1,
            "reason": "",
        },
        {
            "uid": "a3",
            "premise": "A dog runs.",
            "hypothesis": "Nothing moves.",
            "label": 2,
            "reason": "",
        },
    ]
    source = HUB_SOURCES["anli"].model_copy(
        update={"name": str(hub_folder(tmp_path / "anli", records)), "split": "train"}
    )
    examples = load_source(source, "anli").examples
    assert [e.gold for e in examples] == ["entailment", "neutral", "contradiction"]
    assert examples[0].question == "Premise: A dog runs.\nHypothesis: An animal moves."


def test_printed_source_blocks_are_valid_configs_equal_to_the_catalogue() -> None:
    for source in HUB_SOURCES.values():
        assert SourceConfig.model_validate(yaml.safe_load(source_block(source))["source"]) == source


def test_a_pattern_that_does_not_match_names_the_line_and_the_field(tmp_path) -> None:
    record = date_record(0) | {"inputs": ""}
    local_file = tmp_path / "dates.jsonl"
    local_file.write_text(json.dumps(record) + "\n")
    fields = HUB_SOURCES["date_understanding"].fields.model_copy(
        update={"question_pattern": r"^Question: (?P<question>.*)"}
    )
    with pytest.raises(
        DataError, match=r"dates.jsonl:1: field 'inputs': (missing or empty|question_pattern)"
    ):
        load_source(
            SourceConfig(kind="local", path=local_file, fields=fields), "date_understanding"
        )
    record["inputs"] = "Q: What day is it?\nA:"
    local_file.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r"dates.jsonl:1: field 'inputs': question_pattern"):
        load_source(
            SourceConfig(kind="local", path=local_file, fields=fields), "date_understanding"
        )


def test_scores_must_name_one_best_option(tmp_path) -> None:
    record = date_record(0) | {"multiple_choice_scores": [1, 1, 0, 0, 0, 0]}
    local_file = tmp_path / "dates.jsonl"
    local_file.write_text(json.dumps(record) + "\n")
    source = SourceConfig(
        kind="local", path=local_file, fields=HUB_SOURCES["date_understanding"].fields
    )
    with pytest.raises(DataError, match="field 'multiple_choice_scores': .*no single best option"):
        load_source(source, "date_understanding")


def test_the_readme_source_blocks_are_the_catalogue_entries() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block.split("```", 1)[0]) for block in readme.split("```yaml\n")[1:]]
    shown = {
        b["data"]["task"]: b["data"]["source"]
        for b in blocks
        if isinstance(b, dict) and "data" in b and "source" in b["data"]
    }
    for task in ("strategyqa", "date_understanding"):
        assert SourceConfig.model_validate(shown[task]) == HUB_SOURCES[task], task
