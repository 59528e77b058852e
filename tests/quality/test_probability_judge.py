"""A local judge scored by P("Yes") as its next token: no parsing, stored, re-filtered for free."""

from __future__ import annotations

import pytest

from qrdistill.errors import BackendError
from qrdistill.models import choice_probabilities, load_causal_lm, render_prompt
from qrdistill.quality import FilterConfig, filter_paths
from qrdistill.quality.judge import DEFAULT_PROBABILITY_TEMPLATE, judge_prompt
from qrdistill.records import ReasoningPath
from qrdistill.utils.io import read_json, read_jsonl_as, write_jsonl


def make_path(qid: str, style: str, text: str) -> ReasoningPath:
    return ReasoningPath(
        id=ReasoningPath.make_id(qid, style, 0),
        question_id=qid,
        task="strategyqa",
        style=style,
        prompt=f"Is {qid} a question?",
        gold="yes",
        text=text,
        answer="yes",
        correct=True,
    )


@pytest.fixture
def paths_path(tmp_path):
    path = tmp_path / "paths.jsonl"
    write_jsonl(
        path,
        [
            make_path("q1", "vanilla", "It is. The answer is yes."),
            make_path("q2", "program", "print('yes')  # The answer is yes."),
            make_path("q3", "backward", "Checking backwards: yes. The answer is yes."),
        ],
    )
    return path


def test_choice_probabilities_are_normalised_and_batch_independent(tiny_students):
    model, tok = load_causal_lm(str(tiny_students[0]))
    prompts = [render_prompt(tok, q) for q in ("Is it? Answer Yes or No.", "Sound? " * 5, "x")]
    batched = choice_probabilities(model, tok, prompts, batch_size=3)
    single = [choice_probabilities(model, tok, [p])[0] for p in prompts]
    for row, alone in zip(batched, single):
        assert sum(row) == pytest.approx(1.0)
        assert row == pytest.approx(alone, abs=1e-5)


def test_probability_judge_scores_every_path_and_refilters_without_a_model(
    paths_path, tmp_path, tiny_students
):
    judge = str(tiny_students[0])
    cfg = FilterConfig(
        judge={"kind": "hf", "model": judge},
        judge_scoring="probability",
        threshold=0.0,
        show_progress=False,
    )
    out = tmp_path / "filter"
    filter_paths(cfg, paths_path, out)
    judged = read_jsonl_as(out / "judged.jsonl", ReasoningPath)

    model, tok = load_causal_lm(judge)
    paths = read_jsonl_as(paths_path, ReasoningPath)
    expected = choice_probabilities(
        model,
        tok,
        [render_prompt(tok, judge_prompt(DEFAULT_PROBABILITY_TEMPLATE, p)) for p in paths],
    )
    for path, (yes, _) in zip(judged, expected):
        assert path.judge.status == "ok" and path.judge.attempts == 1
        assert path.judge.score == pytest.approx(yes, abs=1e-4)
        assert "P(Yes)" in path.judge.reason
    assert all(p.kept for p in judged)  # threshold 0 keeps every scored path

    # Re-filtering at the median score reads the stored scores: the model is never loaded again.
    import qrdistill.llm.backends as backends

    def no_model(*_, **__):
        raise AssertionError("re-filtering loaded the judge")

    scores = sorted(p.judge.score for p in judged)
    original = backends.HFYesProbabilityBackend.__init__
    backends.HFYesProbabilityBackend.__init__ = no_model
    try:
        filter_paths(cfg, paths_path, out, threshold=scores[1])
    finally:
        backends.HFYesProbabilityBackend.__init__ = original
    funnel = read_json(out / "funnel.json")
    assert funnel["total"]["judge_kept"] == sum(s >= scores[1] for s in scores) == 2


def test_probability_scoring_needs_a_local_judge(paths_path, tmp_path):
    cfg = FilterConfig(
        judge={"kind": "openai", "model": "m"}, judge_scoring="probability", show_progress=False
    )
    with pytest.raises(BackendError, match="only the hf backend"):
        filter_paths(cfg, paths_path, tmp_path / "filter")
