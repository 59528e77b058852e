"""RevThink as a method of a run: the preset, the config, and the dry run's estimate of its extra
teacher requests (three per question; none is asked of any server)."""

from __future__ import annotations

import pytest

from qrdistill.config import RunConfig
from qrdistill.estimate import estimate_lines, generate_estimate
from qrdistill.llm import RequestCache
from qrdistill.methods import PRESETS
from qrdistill.pipeline import Pipeline
from qrdistill.records import Generation
from qrdistill.reporting.paper import TABLE1, method_label
from run_configs import small_run

MAX_TOKENS = 8000


def run_config(tmp_path, methods: dict) -> RunConfig:
    backend = {"kind": "openai", "model": "teacher-x", "max_tokens": MAX_TOKENS}
    return RunConfig.model_validate(small_run(tmp_path / "run", backend, methods=methods))


def test_revthink_is_a_preset_trained_as_plain_sft_on_every_generated_path(tmp_path):
    assert "revthink" in PRESETS
    assert method_label("revthink") in TABLE1  # the report shows the paper's RevThink row beside it
    cfg = run_config(tmp_path, {"revthink": {}})
    train, filtered = cfg.method_train_config("revthink")
    assert (train.objective, train.effective_routing_mode, train.peer_active) == (
        "revthink",
        "all",
        False,
    )
    assert not filtered  # like the other baselines: no judge
    assert Pipeline(cfg).training_paths("revthink") == tmp_path / "run" / "generate" / "paths.jsonl"
    assert cfg.revthink
    assert not run_config(tmp_path, {"qr_distill": {}, "sft_single": {}}).revthink


def test_a_typo_of_revthink_is_an_error_that_names_it(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'revthink'"):
        run_config(tmp_path, {"revthnk": {}})


def chars4(text: str) -> int:
    return max(1, round(len(text) / 4))  # how the estimate counts without a local tokenizer


def test_dry_run_counts_revthinks_three_requests_per_question(tmp_path):
    plain = generate_estimate(run_config(tmp_path / "a", {"qr_distill": {}}))
    cfg = run_config(tmp_path / "b", {"qr_distill": {}, "revthink": {}})
    with_revthink = generate_estimate(cfg)
    assert plain.requests == 6  # 3 questions x 2 styles
    assert with_revthink.requests == with_revthink.requests_total == 6 + 3 * 3
    assert with_revthink.max_output_tokens - plain.max_output_tokens == 9 * MAX_TOKENS

    from qrdistill.data import split_examples
    from qrdistill.tasks import get_task
    from qrdistill.teacher.revthink import question_steps

    examples = split_examples(cfg.data)[0]["train"]
    steps = [
        question_steps(cfg.generate, e, get_task(e.task).build_prompt(e), {}) for e in examples
    ]
    # Before anything is cached, the backward question is counted as max_tokens long in the two
    # requests that quote it, and the backward reasoning in the one that quotes it.
    assert [s.unknown_tokens for s in steps[0]] == [0, MAX_TOKENS, 2 * MAX_TOKENS]
    extra = sum(chars4(s.request.prompt) + s.unknown_tokens for qs in steps for s in qs)
    assert with_revthink.input_tokens - plain.input_tokens == extra
    line = estimate_lines([with_revthink])
    assert "generate (teacher-x): 15 of 15 requests to run" in line[1]
    assert "with RevThink's 9 requests (3 per question)" in line[-1]

    # Once the backward questions are cached, their requests cost nothing and the requests that
    # quote them are counted with the real text.
    with RequestCache(tmp_path / "b" / "run" / "generate" / "cache.sqlite") as cache:
        for i, qs in enumerate(steps):
            cache.put(qs[0].request.key, qs[0].request.label, Generation(f"Why X{i}?", 40, 6))
    later = generate_estimate(cfg)
    assert later.requests == 6 + 2 * 3 and later.requests_total == 15
    known = {qs[0].request.key: Generation(f"Why X{i}?", 40, 6) for i, qs in enumerate(steps)}
    steps = [
        question_steps(cfg.generate, e, get_task(e.task).build_prompt(e), known) for e in examples
    ]
    assert all(f"Why X{i}?" in qs[1].request.prompt for i, qs in enumerate(steps))
    assert [s.unknown_tokens for s in steps[0]] == [0, 0, MAX_TOKENS]
    assert later.input_tokens - plain.input_tokens == sum(
        chars4(s.request.prompt) + s.unknown_tokens for qs in steps for s in qs[1:]
    )


@pytest.mark.parametrize("thinking", ["auto", "none"])
def test_a_reasoning_teacher_is_told_its_backward_reasoning_reply_is_kept(thinking, tmp_path):
    """As for a path: students learn the reply, so a teacher that thinks in private is asked to
    reason in its reply (the null twin: a teacher that does not think is asked as it is)."""
    from qrdistill.data import split_examples
    from qrdistill.teacher.revthink import BACKWARD_REASONING_PROMPT, question_steps
    from qrdistill.teacher.styles import REPLY_HOLDS_REASONING

    cfg = run_config(tmp_path, {"revthink": {}})
    gen = cfg.generate.model_copy(
        update={"backend": cfg.generate.backend.model_copy(update={"thinking": thinking})}
    )
    example = split_examples(cfg.data)[0]["train"][0]
    known = {}
    steps = question_steps(gen, example, "Q?", known)
    known[steps[0].request.key] = Generation("Why?", 1, 1)
    reasoning = question_steps(gen, example, "Q?", known)[1].request.prompt
    expected = BACKWARD_REASONING_PROMPT.replace("{backward_question}", "Why?")
    assert reasoning == expected + (REPLY_HOLDS_REASONING if thinking != "none" else "")
    # The backward question's reply is the question itself, and the check is read, not learned:
    # both are asked as they are.
    assert REPLY_HOLDS_REASONING not in steps[0].request.prompt + steps[2].request.prompt
