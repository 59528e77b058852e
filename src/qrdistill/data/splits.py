"""A seeded train/dev/test split with no shared question, written as JSONL.

The rule (`prepare_splits`):
1. Load the source; drop repeated questions (same text after lower-casing and collapsing spaces),
   keeping the first, so that no question text can land in two splits.
2. Shuffle with `random.Random(seed)` and cut in a fixed order: test first, then dev, then train.
   Cutting test first keeps the test set identical when only dev or train sizes change.
3. With a `train_source`, train comes from that source instead (shuffled with the same seed),
   after removing any question that is also in dev or test.
4. With `train_fraction` f < 1, train keeps the first round(f * n) of its n shuffled questions
   (at least one): the test and dev splits are untouched, and a smaller fraction's questions are
   a subset of a larger one's under the same seed.
Sizes are exact: asking for more examples than a source has is an error, never a silent shrink.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from qrdistill.data.config import DataConfig
from qrdistill.data.sources import LoadedSource, load_source
from qrdistill.errors import DataError
from qrdistill.records import Example
from qrdistill.tasks import get_task
from qrdistill.utils.io import read_jsonl_as, write_json, write_jsonl

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


def question_key(example: Example) -> str:
    """What makes two questions the same: their text, ignoring case and spacing."""
    return " ".join(example.question.lower().split())


def _unique_questions(examples: list[Example], exclude: Iterable[str] = ()) -> list[Example]:
    seen = set(exclude)
    unique = []
    for example in examples:
        if question_key(example) not in seen:
            seen.add(question_key(example))
            unique.append(example)
    return unique


def _shuffled(examples: list[Example], seed: int) -> list[Example]:
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def _take(
    examples: list[Example], start: int, count: int | None, what: str, available: str
) -> list[Example]:
    end = len(examples) if count is None else start + count
    if end > len(examples) or (count is None and start >= len(examples)):
        raise DataError(
            f"not enough examples for {what}: {available}. "
            "Lower data.test_size / data.dev_size / data.train_size, or add a train_source"
        )
    return examples[start:end]


def _fraction_count(n: int, fraction: float) -> int:
    return max(1, round(fraction * n)) if n else 0


def split_examples(cfg: DataConfig) -> tuple[dict[str, list[Example]], dict]:
    """The three splits and a manifest describing how they were made (without writing anything)."""
    task = get_task(cfg.task)
    main = load_source(cfg.source, task, cfg.skip_bad_lines)
    pool = _shuffled(_unique_questions(main.examples), cfg.seed)
    counts = (
        f"{main.description} has {len(pool)} distinct questions; asked for test {cfg.test_size}, "
        f"dev {cfg.dev_size}, train {cfg.train_size or 'the rest'}"
    )
    test = _take(pool, 0, cfg.test_size, "test", counts)
    dev = _take(pool, cfg.test_size, cfg.dev_size, "dev", counts)
    loaded: list[LoadedSource] = [main]
    if cfg.train_source is None:
        train = _take(pool, cfg.test_size + cfg.dev_size, cfg.train_size, "train", counts)
    else:
        other = load_source(cfg.train_source, task, cfg.skip_bad_lines)
        loaded.append(other)
        held_out = {question_key(example) for example in test + dev}
        train_pool = _shuffled(_unique_questions(other.examples, exclude=held_out), cfg.seed)
        train = _take(
            train_pool,
            0,
            cfg.train_size,
            "train",
            f"{other.description} has {len(train_pool)} distinct questions not in dev/test; "
            f"asked for {cfg.train_size or 'all'}",
        )
    train = train[: _fraction_count(len(train), cfg.train_fraction)]
    splits = {"train": train, "dev": dev, "test": test}
    id_counts = Counter(example.id for rows in splits.values() for example in rows)
    clash = next((example_id for example_id, count in id_counts.items() if count > 1), None)
    if clash is not None:
        raise DataError(
            f"id '{clash}' names different questions in the train source and in dev/test; "
            "give the sources distinct ids (data.*.fields.id)"
        )
    manifest = {
        "task": task.name,
        "seed": cfg.seed,
        "train_fraction": cfg.train_fraction,
        "counts": {name: len(rows) for name, rows in splits.items()},
        "sources": [source.description for source in loaded],
        "skipped_bad_records": sum(len(source.skipped) for source in loaded),
        "skipped": [message for source in loaded for message in source.skipped],
    }
    return splits, manifest


def prepare_splits(cfg: DataConfig, out_dir: Path) -> dict[str, Path]:
    """Write out_dir/{train,dev,test}.jsonl (and manifest.json: sources, counts, skipped records)
    atomically; return {"train": path, "dev": path, "test": path}."""
    out_dir = Path(out_dir)
    splits, manifest = split_examples(cfg)
    paths = {}
    for name in SPLITS:
        paths[name] = out_dir / f"{name}.jsonl"
        write_jsonl(paths[name], splits[name])
    write_json(out_dir / "manifest.json", manifest)
    if manifest["skipped_bad_records"]:
        logger.warning(
            "%d bad record(s) were skipped (listed in %s)",
            manifest["skipped_bad_records"],
            out_dir / "manifest.json",
        )
    return paths


def load_examples(path: str | Path) -> list[Example]:
    """Read a JSONL file of Example records; a bad record raises DataError naming file:line:field."""
    return read_jsonl_as(path, Example)
