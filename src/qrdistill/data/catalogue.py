"""Where each built-in task's data comes from when no installed package ships it.

StrategyQA, Date understanding and ANLI have no packaged copy (BIG-bench's archive left the
package index), so each has a ready `hub` source block here: a real data set id, config, split
and field mapping. The same block reads a local copy: save the data set as JSONL and use
`kind: local` with the same `fields`. `qrdistill tasks` prints these blocks.
"""

from __future__ import annotations

import yaml

from qrdistill.data.config import FieldMap, SourceConfig

HUB_SOURCES: dict[str, SourceConfig] = {
    # The StrategyQA release (Geva et al. 2021) with its train/test split; `answer` is a bool.
    "strategyqa": SourceConfig(
        kind="hub", name="ChilleD/StrategyQA", split="train", fields=FieldMap(id="qid")
    ),
    # BIG-bench's own date_understanding task (369 questions: train 296, validation 73) as
    # converted to parquet. `inputs` wraps the question as "Q: ...\n  choice: ...\nA:", and the
    # options list the correct date first, so they are shuffled per question.
    "date_understanding": SourceConfig(
        kind="hub",
        name="tasksource/bigbench",
        subset="date_understanding",
        split="train",
        fields=FieldMap(
            id="idx",
            question="inputs",
            question_pattern=r"^\s*(?:Q:\s*)?(?P<question>.*?)\s*(?:\n[\s.]*choice:|\nA:|$)",
            choices="multiple_choice_targets",
            gold="multiple_choice_scores",
            shuffle_choices=True,
        ),
    ),
    "anli": SourceConfig(
        kind="hub",
        name="facebook/anli",
        split="test_r3",
        fields=FieldMap(
            id="uid",
            question="Premise: {premise}\nHypothesis: {hypothesis}",
            gold="label",
            gold_labels=["entailment", "neutral", "contradiction"],
        ),
    ),
}


def source_block(source: SourceConfig) -> str:
    """The source as the YAML a run config takes under `data.source`."""
    return yaml.safe_dump(
        {"source": source.model_dump(mode="json", exclude_defaults=True)},
        sort_keys=False,
        allow_unicode=True,
        width=1000,  # one line per key: a folded regular expression is hard to read
    )


def hub_source_hint(task: str) -> str:
    """A short pointer to the task's ready hub source, for one-line error messages."""
    source = HUB_SOURCES.get(task)
    if source is None:
        return "a `kind: hub` source"
    where = source.name + (f" (config {source.subset})" if source.subset else "")
    return f"the hub data set {where}, whose ready source block `qrdistill tasks` prints"
