"""Load examples from any source into `Example` records, checked against the task.

Every record is validated as it is converted: a missing field, a gold answer the task cannot
use (an unknown label, an option letter beyond the choices) or a malformed line is a `DataError`
naming the file, the line and the field, and saying what to do. With `skip_bad_lines` such
records are skipped instead, counted, and reported with a warning and in `LoadedSource.skipped`.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrdistill.data.config import FieldMap, SourceConfig
from qrdistill.data.packaged import load_packaged
from qrdistill.errors import DataError
from qrdistill.records import Example
from qrdistill.tasks import Task, get_task
from qrdistill.tasks.answers import letters_for

logger = logging.getLogger(__name__)


@dataclass
class LoadedSource:
    examples: list[Example]
    description: str  # e.g. "local file data/anli.jsonl" for manifests and messages
    skipped: list[str] = field(default_factory=list)  # one message per skipped bad record


class _BadRecord(ValueError):
    """A record that cannot become an Example; `field` names the culprit (None: the whole line,
    e.g. invalid JSON)."""

    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def load_source(
    source: SourceConfig, task: str | Task, skip_bad_lines: bool = False
) -> LoadedSource:
    """Load every example of one source for `task` (a name or a `Task`)."""
    task = get_task(task) if isinstance(task, str) else task
    if source.kind == "packaged":
        examples = load_packaged(task.name, source.split)
        return LoadedSource(examples, f"packaged {task.name} ({source.split or 'all splits'})")
    if source.kind == "reasoning_gym":
        return LoadedSource(
            load_reasoning_gym(task, source.name, source.size, source.seed),
            f"reasoning-gym {source.name} (size {source.size}, seed {source.seed})",
        )
    if source.kind == "local":
        return load_local(source.path, task, source.fields, skip_bad_lines)
    return load_hub(source, task, skip_bad_lines)


# -- reasoning-gym ---------------------------------------------------------------------------------


def load_reasoning_gym(task: Task, generator: str, size: int, seed: int) -> list[Example]:
    """`size` procedurally generated questions, identical for the same (generator, size, seed)."""
    import reasoning_gym

    try:
        dataset = reasoning_gym.create_dataset(generator, size=size, seed=seed)
    except (KeyError, ValueError) as err:
        raise DataError(
            f"reasoning-gym has no generator '{generator}' ({err}); "
            "see reasoning_gym.factory.DATASETS for the names"
        ) from None
    examples = []
    for index, item in enumerate(dataset):
        examples.append(
            Example(
                id=f"rg-{generator}-{seed}-{index}",
                task=task.name,
                question=item["question"],
                gold=_checked_gold(
                    task, str(item["answer"]), None, f"reasoning-gym {generator} item {index}"
                ),
                metadata={
                    "source": "reasoning_gym",
                    "generator": generator,
                    "seed": seed,
                    "index": index,
                },
            )
        )
    return examples


def _checked_gold(task: Task, gold: str, choices: list[str] | None, where: str) -> str:
    try:
        return task.normalize_gold(gold, choices)
    except ValueError as err:
        raise DataError(f"{where}: field 'gold': {err}") from None


# -- records with a field mapping (local files, hub) ---------------------------------------------


def _field_value(record: dict[str, Any], name: str) -> Any:
    if name not in record or record[name] is None or record[name] == "":
        raise _BadRecord(
            name,
            f"missing or empty field '{name}' (fields present: {', '.join(record) or 'none'}); "
            "fix the record or map the right field in the source's `fields`",
        )
    return record[name]


def _question(record: dict[str, Any], fields: FieldMap) -> str:
    if "{" not in fields.question:
        text = str(_field_value(record, fields.question))
    else:
        template_fields = [
            name for _, name, _, _ in string.Formatter().parse(fields.question) if name
        ]
        values = {name: _field_value(record, name) for name in template_fields}
        text = fields.question.format_map(values)
    if fields.question_pattern is not None:
        found = re.search(fields.question_pattern, text, flags=re.DOTALL)
        if found is None or not found.group("question").strip():
            raise _BadRecord(
                fields.question,
                f"question_pattern {fields.question_pattern!r} does not match {text[:80]!r}; "
                "fix the pattern in the source's `fields`",
            )
        text = found.group("question")
    return text.strip()


def _choices(record: dict[str, Any], fields: FieldMap) -> tuple[list[str] | None, list[str] | None]:
    """(option texts, the data set's own option labels if it has any, e.g. ["1", "2", "3", "4"])."""
    if fields.choices is None:
        return None, None
    if isinstance(fields.choices, list):
        return [str(_field_value(record, name)) for name in fields.choices], None
    value = _field_value(record, fields.choices)
    if isinstance(value, str):  # CSV: a JSON list in one cell
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _BadRecord(
                fields.choices, f"field '{fields.choices}' must hold a JSON list of options"
            ) from None
    labels = None
    if isinstance(value, dict) and "text" in value:  # Hugging Face ARC / CommonsenseQA layout
        labels = [str(label) for label in value.get("label") or []] or None
        value = value["text"]
    if not isinstance(value, list) or len(value) < 2:
        raise _BadRecord(
            fields.choices, f"field '{fields.choices}' must be a list of at least two options"
        )
    return [str(option) for option in value], labels


def _gold(
    record: dict[str, Any],
    fields: FieldMap,
    choices: list[str] | None,
    option_labels: list[str] | None,
    task: Task,
) -> str:
    """The gold answer, normalised by the task. The data set's own option labels are mapped to
    letters; otherwise a whole-number gold is a 0-based index into `gold_labels` or the options."""
    raw = _field_value(record, fields.gold)
    if isinstance(raw, list):
        raw = _best_scored_option(raw, choices, fields.gold)
    text = ("yes" if raw else "no") if isinstance(raw, bool) else str(raw).strip()
    index_into = fields.gold_labels or (
        list(letters_for(choices)) if task.answer_type == "multiple_choice" else None
    )
    if option_labels and text in option_labels:
        text = letters_for(choices)[option_labels.index(text)]
    elif index_into and text.isdigit():
        if int(text) >= len(index_into):
            raise _BadRecord(
                fields.gold, f"gold index {text} is out of range 0..{len(index_into) - 1}"
            )
        text = index_into[int(text)]
    if task.answer_type == "number" and "####" in text:  # a GSM8K-style worked solution
        text = text.rpartition("####")[2]
    try:
        return task.normalize_gold(text, choices)
    except ValueError as err:
        raise _BadRecord(fields.gold, str(err)) from None


def _best_scored_option(scores: list, choices: list[str] | None, field_name: str) -> int:
    """The index of the one best option from per-option scores (BIG-bench's target scores)."""
    if choices is None or len(scores) != len(choices):
        raise _BadRecord(
            field_name,
            f"a list gold needs one score per option ({len(scores)} scores, "
            f"{len(choices or [])} options); map the options with fields.choices",
        )
    best = max(scores)
    if [score == best for score in scores].count(True) != 1:
        raise _BadRecord(field_name, f"scores {scores} have no single best option")
    return scores.index(best)


def _shuffled(choices: list[str], gold: str, seed: str) -> tuple[list[str], str]:
    """The options in an order fixed by `seed` (not by the run seed: the data set itself never
    changes), and the gold letter moved with its option."""
    order = list(range(len(choices)))
    random.Random(seed).shuffle(order)
    letters = letters_for(choices)
    return [choices[i] for i in order], letters[order.index(letters.index(gold))]


def convert_records(
    records: Iterable[tuple[str, int, dict[str, Any] | _BadRecord]],
    task: Task,
    fields: FieldMap,
    skip_bad_lines: bool,
) -> tuple[list[Example], list[str]]:
    """Turn (origin, line, record or parse error) triples into Examples; returns (examples, skipped)."""
    if task.answer_type == "multiple_choice" and fields.choices is None:
        raise DataError(
            f"task '{task.name}' is multiple choice: map the options with fields.choices"
        )
    if fields.shuffle_choices and task.answer_type != "multiple_choice":
        raise DataError(
            f"fields.shuffle_choices is for multiple-choice tasks; '{task.name}' is "
            f"{task.answer_type}: remove it"
        )
    examples: list[Example] = []
    skipped: list[str] = []
    first_line_of_id: dict[str, int] = {}
    for origin, line, record in records:
        try:
            if isinstance(record, _BadRecord):
                raise record
            example_id = (
                str(_field_value(record, fields.id)) if fields.id else f"{Path(origin).stem}-{line}"
            )
            if example_id in first_line_of_id:
                raise _BadRecord(
                    fields.id,
                    f"duplicate id '{example_id}' (first on line "
                    f"{first_line_of_id[example_id]}); ids must be unique",
                )
            choices, option_labels = _choices(record, fields)
            gold = _gold(record, fields, choices, option_labels, task)
            if fields.shuffle_choices:
                choices, gold = _shuffled(choices, gold, seed=f"{task.name}-{example_id}")
            metadata: dict[str, Any] = {"source": origin, "line": line}
            metadata.update({name: record.get(name) for name in fields.metadata})
            examples.append(
                Example(
                    id=example_id,
                    task=task.name,
                    question=_question(record, fields),
                    choices=choices,
                    gold=gold,
                    metadata=metadata,
                )
            )
            first_line_of_id[example_id] = line
        except _BadRecord as err:
            message = (
                f"{origin}:{line}: " + (f"field '{err.field}': " if err.field else "") + str(err)
            )
            if not skip_bad_lines:
                raise DataError(
                    message + " (or set data.skip_bad_lines: true to skip such records)"
                ) from None
            skipped.append(message)
    if skipped:
        logger.warning("skipped %d bad record(s); the first: %s", len(skipped), skipped[0])
    return examples, skipped


def _jsonl_records(path: Path) -> Iterator[tuple[str, int, dict[str, Any] | _BadRecord]]:
    with path.open("rb") as handle:  # decoded line by line: a bad byte is named by its line
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield (
                    str(path),
                    line_number,
                    _BadRecord(
                        None,
                        f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                        "save the file as UTF-8",
                    ),
                )
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield (
                    str(path),
                    line_number,
                    _BadRecord(
                        None,
                        f"not valid JSON ({err.msg} at column {err.colno}); "
                        "fix or remove this line",
                    ),
                )
                continue
            if not isinstance(record, dict):
                record = _BadRecord(None, f"expected a JSON object, got {type(record).__name__}")
            yield str(path), line_number, record


def _csv_records(path: Path) -> Iterator[tuple[str, int, dict[str, Any] | _BadRecord]]:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # Quoted cells may span lines, so a CSV cannot be cut into records before it is decoded:
        # a bad byte stops the load (with or without skip_bad_lines), naming its line.
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8"
        ) from None
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        start = 2  # line 1 is the header
        for row in reader:
            if None in row:  # more cells than header columns
                yield (
                    str(path),
                    start,
                    _BadRecord(
                        None,
                        f"{len(row) - 1 + len(row[None])} cells but "
                        f"{len(reader.fieldnames or [])} header columns",
                    ),
                )
            else:
                yield str(path), start, row
            start = reader.line_num + 1  # quoted cells may span several lines


def load_local(
    path: Path | str, task: Task | str, fields: FieldMap | None = None, skip_bad_lines: bool = False
) -> LoadedSource:
    """A local .jsonl or .csv file read through `fields` (default: question/answer[/choices])."""
    task = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found (data.source.path)")
    if not path.is_file():
        raise DataError(f"{path}: is a directory, not a data file (data.source.path)")
    readers = {".jsonl": _jsonl_records, ".csv": _csv_records}
    if path.suffix.lower() not in readers:
        raise DataError(f"{path}: unsupported file type '{path.suffix}'; use .jsonl or .csv")
    examples, skipped = convert_records(
        readers[path.suffix.lower()](path), task, fields or FieldMap(), skip_bad_lines
    )
    if not examples:
        raise DataError(f"{path}: no usable records")
    return LoadedSource(examples, f"local file {path}", skipped)


def load_hub(source: SourceConfig, task: Task, skip_bad_lines: bool = False) -> LoadedSource:
    """A Hugging Face hub data set through `datasets` (needs network, or a warm HF cache)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            "the 'datasets' package is not installed; `pip install datasets` "
            "or use a source of kind 'local'"
        ) from None
    where = (
        f"hub:{source.name}"
        + (f"/{source.subset}" if source.subset else "")
        + f"[{source.split or 'train'}]"
    )
    try:
        rows = datasets.load_dataset(source.name, source.subset, split=source.split or "train")
    except Exception as err:  # noqa: BLE001 - offline, unknown name, gated: all the same to the user
        raise DataError(
            f"{where}: could not load from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err)[:200]}). Offline? Download the data set elsewhere and use a "
            "source of kind 'local' (JSONL/CSV) with a field mapping"
        ) from None
    records = ((where, index, dict(row)) for index, row in enumerate(rows))
    examples, skipped = convert_records(records, task, source.fields, skip_bad_lines)
    return LoadedSource(examples, where, skipped)
