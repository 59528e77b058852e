"""RevThink through the whole pipeline on tiny students, with a STAND-IN teacher (a stub server
whose replies are scripted by what each prompt asks, named so: a tiny random model is never right
and never writes a consistency verdict, so nothing would reach RevThink's training)."""

from __future__ import annotations

import pytest

from qrdistill.config import RunConfig
from qrdistill.pipeline import Pipeline
from qrdistill.records import REVTHINK_FILE
from qrdistill.utils.io import read_json, read_jsonl
from run_configs import tiny_pipeline_run
from served_model import StubOpenAIServer, openai_backend, stand_in_teacher

pytestmark = pytest.mark.server


def test_revthink_trains_and_evaluates_beside_a_baseline_without_retraining_it(
    tmp_path, tiny_students
):
    run = tmp_path / "run"
    stub = StubOpenAIServer([])
    stub.default = (200, {}, stand_in_teacher(stub, [run / "data" / "train.jsonl"]))
    backend = openai_backend(stub.base_url, concurrency=1).model_dump()

    def config(methods: dict) -> RunConfig:
        return RunConfig.model_validate(
            tiny_pipeline_run(
                run,
                tiny_students,
                backend,
                generate={"styles": ["vanilla"]},
                methods=methods,
                zero_shot=False,
            )
        )

    try:
        Pipeline(config({"sft_single": {}})).run(("train",))
        assert len(stub.completions()) == 4  # one path per question
        assert not (run / "generate" / REVTHINK_FILE).exists()
        before = {p: p.stat().st_mtime_ns for p in run.rglob(".stage.json")}

        Pipeline(config({"sft_single": {}, "revthink": {}})).run(("evaluate",))
        assert len(stub.completions()) == 4 + 3 * 4  # the paths come from the cache
    finally:
        stub.close()
    after = {p: p.stat().st_mtime_ns for p in run.rglob(".stage.json")}
    changed = {str(p.relative_to(run)) for p in after if after[p] != before.get(p)}
    # The generate stage is redone (from its cache) to write RevThink's data; the baseline, which
    # does not read it, is not retrained.
    assert changed == {
        "generate/.stage.json",
        "train/revthink/.stage.json",
        "evaluate/.stage.json",
    }
    triples = read_jsonl(run / "generate" / REVTHINK_FILE)
    assert [t["consistent"] for t in triples] == [True] * 4
    summary = read_json(run / "train" / "revthink" / "summary.json")
    assert (summary["method"], summary["objective"]) == ("revthink", "revthink")
    assert summary["counts"]["triples_used"] == 4 and summary["counts"]["items"] == 12
    # At test time it answers forward only, as every method does: the same test questions.
    rows = [
        r for r in read_jsonl(run / "evaluate" / "predictions.jsonl") if r["student"] in ("a", "b")
    ]
    asked = {(r["method"], r["student"]): set() for r in rows}
    for r in rows:
        asked[(r["method"], r["student"])].add(r["question_id"])
    assert set(asked) == {(m, s) for m in ("sft_single", "revthink") for s in ("a", "b")}
    assert len({frozenset(q) for q in asked.values()}) == 1
    assert len(asked[("revthink", "a")]) == 3
