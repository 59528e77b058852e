"""Task registry, prompts, user-defined tasks and math-verify off the main thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from qrdistill.errors import ConfigError
from qrdistill.records import Example
from qrdistill.tasks import Task, TaskSpec, equivalence, get_task, list_tasks, register_task

BUILTIN = [
    "gsm8k",
    "math",
    "arc_challenge",
    "commonsense_qa",
    "date_understanding",
    "strategyqa",
    "piqa",
    "boolq",
    "anli",
]


def test_builtin_tasks_and_answer_types() -> None:
    assert list_tasks()[: len(BUILTIN)] == BUILTIN
    assert {name: get_task(name).answer_type for name in BUILTIN} == {
        "gsm8k": "number",
        "math": "math",
        "arc_challenge": "multiple_choice",
        "commonsense_qa": "multiple_choice",
        "date_understanding": "multiple_choice",
        "strategyqa": "yes_no",
        "piqa": "multiple_choice",
        "boolq": "yes_no",
        "anli": "label_set",
    }
    assert isinstance(get_task("gsm8k"), Task) and get_task("gsm8k").name == "gsm8k"


def test_unknown_task_names_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="unknown task 'gsm9k'; available: gsm8k, math"):
        get_task("gsm9k")


def test_multiple_choice_prompt_lists_lettered_options_and_fixes_the_format() -> None:
    example = Example(
        id="q1",
        task="arc_challenge",
        question="Which is warmest?",
        choices=["ice", "fire", "snow"],
        gold="B",
    )
    assert get_task("arc_challenge").build_prompt(example) == (
        "Which is warmest?\n\nA. ice\nB. fire\nC. snow\n\n"
        'End your response with "The best answer is X." where X is the letter of the correct option.'
    )


@pytest.mark.parametrize(
    "name, expected_tail",
    [
        ("gsm8k", "Give the final answer as a number inside \\boxed{}."),
        ("math", "Give the final answer inside \\boxed{}."),
        ("strategyqa", 'End your response with "The answer is yes." or "The answer is no."'),
        (
            "anli",
            "Does the premise entail the hypothesis, contradict it, or neither?\n\n"
            'End your response with "The answer is L." where L is one of: entailment, neutral, contradiction.',
        ),
    ],
)
def test_prompt_from_a_dict(name: str, expected_tail: str) -> None:
    prompt = get_task(name).build_prompt({"question": "  Q?  ", "choices": None})
    assert prompt == "Q?\n\n" + expected_tail


def test_multiple_choice_prompt_without_choices_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 'choices'"):
        get_task("commonsense_qa").build_prompt({"question": "Q?"})


def test_prompt_answer_format_round_trips_through_extraction() -> None:
    """A response that follows the prompt's own format line is read back correctly."""
    assert get_task("arc_challenge").is_correct("The best answer is X.".replace("X", "C"), "C")
    assert get_task("strategyqa").is_correct("The answer is no.", "No")
    assert get_task("anli").is_correct("The answer is neutral.", "neutral")


def test_register_user_label_set_task() -> None:
    task = register_task(
        {
            "name": "sentiment_demo",
            "answer_type": "label_set",
            "labels": ["Positive", "Negative"],
            "instruction": "Classify the review.",
        }
    )
    assert get_task("sentiment_demo") is task and "sentiment_demo" in list_tasks()
    assert task.build_prompt({"question": "Great film!"}) == (
        "Great film!\n\nClassify the review.\n\n"
        'End your response with "The answer is L." where L is one of: positive, negative.'
    )
    assert task.extract_answer("It gushes. The answer is POSITIVE.") == "positive"
    assert task.is_correct("The answer is negative", "Negative")
    with pytest.raises(ValueError, match="unknown label 'mixed'"):
        task.is_correct("The answer is negative", "mixed")


def test_register_user_exact_match_task() -> None:
    task = register_task(TaskSpec(name="capitals_demo", answer_type="exact_match"))
    assert task.extract_answer("France's capital... The answer is **Paris**.") == "paris"
    assert task.extract_answer("Thinking.\nNew York City") == "new york city"
    assert task.is_correct("The answer is Paris. It is on the Seine.", "paris")
    assert not task.is_correct("The answer is Lyon.", "Paris")
    assert task.extract_answer("") is None


def test_register_task_rejects_builtin_names_and_conflicts() -> None:
    with pytest.raises(ConfigError, match="built in"):
        register_task({"name": "gsm8k", "answer_type": "number"})
    register_task({"name": "conflict_demo", "answer_type": "number"})
    register_task({"name": "conflict_demo", "answer_type": "number"})  # same definition: fine
    with pytest.raises(ConfigError, match="different definition"):
        register_task({"name": "conflict_demo", "answer_type": "math"})
    register_task({"name": "conflict_demo", "answer_type": "math"}, replace=True)
    assert get_task("conflict_demo").answer_type == "math"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "x", "answer_type": "label_set"}, "at least two distinct labels"),
        (
            {"name": "x", "answer_type": "label_set", "labels": ["a", "A"]},
            "at least two distinct labels",
        ),
        (
            {"name": "x", "answer_type": "number", "labels": ["a", "b"]},
            "only used with answer_type 'label_set'",
        ),
        ({"name": "x", "answer_type": "essay"}, "answer_type"),
        ({"name": "Bad Name", "answer_type": "number"}, "name"),
        ({"name": "x", "answer_type": "number", "lables": ["a"]}, "unknown key 'lables'"),
    ],
)
def test_task_spec_validation(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        register_task(spec)


def test_math_verification_works_off_the_main_thread() -> None:
    task = get_task("math")
    cases = [
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", True),
        ("\\boxed{2\\sqrt2}", "\\sqrt{8}", True),
        ("\\boxed{3}", "\\frac{14}{3}", False),
        ("\\boxed{0.5}", "\\frac12", True),
    ] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: task.is_correct(case[0], case[1]), cases))
    assert results == [expected for _, _, expected in cases]


def test_math_verification_timeout_counts_as_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hangs(gold: str, answer: str) -> bool:
        release.wait(5)
        return True

    monkeypatch.setattr(equivalence, "_verify", hangs)
    started = time.monotonic()
    try:
        assert equivalence.math_equal("2", "3", timeout_s=0.2) is False
    finally:
        release.set()
    assert time.monotonic() - started < 2
