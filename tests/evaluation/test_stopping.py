"""One answer rule for stopping and scoring: generation stops only where nothing later can change
the answer extraction takes (its last statement before the end of the turn)."""

import random

import pytest

from qrdistill.evaluation.stopping import looping, stop_for_task
from qrdistill.tasks import Task, TaskSpec, get_task


def stopped(task, text: str) -> str:
    """What generation keeps of `text` under the task's stop rule, written one character at a
    time (a token is never smaller); the whole text when the rule never fires (EOS ends it)."""
    rule = stop_for_task(task)
    return next((text[:end] for end in range(1, len(text) + 1) if rule(text[:end])), text)


@pytest.mark.parametrize(
    "task, text, complete",
    [
        ("gsm8k", "48 / 2 = 24, so \\boxed{72}.\n", False),  # an answer alone never ends a turn
        ("gsm8k", "so \\boxed{72}.\nQuestion: A farmer", True),
        ("gsm8k", "so \\boxed{72}. Question:", False),  # a new exchange starts on its own line
        ("gsm8k", "Question: restated.\nSo 72", False),  # no answer stated before it
        ("gsm8k", "The answer is 5.\nQuestion: x", False),  # numbers end on a closed \boxed{}
        ("math", "so \\boxed{\\frac{1}{2}\nQuestion:", False),  # braces still open
        ("math", "so \\boxed{\\frac{1}{2}}\n\n**Problem 2:** x", True),
        ("arc_challenge", "The best answer is B.\nQuestion:", True),
        ("arc_challenge", "The best answer is (C)\nUser: thanks", True),
        ("arc_challenge", "The best answer is: **B**\n", False),
        ("arc_challenge", "The best answer is a bit unclear.\nQuestion:", False),  # no letter
        ("arc_challenge", "the answer is 5\nQuestion:", False),  # not the multiple-choice statement
        ("strategyqa", "The answer is not obvious.\nQuestion:", False),  # "no" inside "not"
        ("strategyqa", "So the answer is yes.\nHuman: next", True),
        ("strategyqa", "So the answer is yes.\nQuestions remain.", False),
        ("anli", "The answer is neither.\nQ: next", True),  # an accepted alias
    ],
)
def test_stops_only_once_the_response_has_ended(task, text, complete):
    assert stop_for_task(get_task(task))(text) is complete


# Each style states a candidate first and a different, verified answer last (the backward and
# tree-of-thought instructions ask for exactly this).
STYLE_PATHS = {
    "gsm8k": (
        "72",
        {
            "vanilla": "Half of 48 is 24, so \\boxed{24}.\nWait, that is May alone; with April's "
            "48 it is \\boxed{72}.",
            "chain_of_thought": "Step 1: 48 / 2 = 24, so May gives \\boxed{24}.\nStep 2: "
            "48 + 24 = 72.\nThe answer is \\boxed{72}.",
            "tree_of_thought": "Approach A: count May only, \\boxed{24}.\nApproach B: add both "
            "months.\nB answers the question: 48 + 24 = 72, \\boxed{72}.",
            "program": "```python\nmay = 48 // 2\nprint(may)  # \\boxed{24}\n```\nThat misses "
            "April: print(48 + may) prints 72.\n\\boxed{72}",
            "backward": "Forward: the candidate is \\boxed{24}.\nBackward: 24 clips leave out "
            "April's 48, so the candidate fails; 48 + 24 = 72 fits.\nVerified: \\boxed{72}.",
            "fact_retrieval": "Fact: half of 48 is \\boxed{24}.\nReasoning: April 48 plus May "
            "24 is 72.\nFinal: \\boxed{72}.",
        },
    ),
    "arc_challenge": (
        "C",
        {
            "vanilla": "It looks like the best answer is B.\nNo: B is a solid. The best answer is C.",
            "chain_of_thought": "Step 1: the best answer is B at first sight.\nStep 2: B "
            "freezes, C melts.\nThe best answer is C.",
            "tree_of_thought": "Way 1: the best answer is B.\nWay 2: compare melting points.\n"
            "Way 2 is sound; the best answer is C.",
            "program": "print('B')  # the best answer is B?\nThe program ignores heat; the best "
            "answer is C.",
            "backward": "Candidate: the best answer is B.\nChecking backward, B contradicts the "
            "question; the best answer is C.",
            "fact_retrieval": "Fact: ice is a solid, so the best answer is B?\nBut water melts "
            "at 0 degrees.\nThe best answer is C.",
        },
    ),
}


@pytest.mark.parametrize("style", list(STYLE_PATHS["gsm8k"][1]))
@pytest.mark.parametrize("task_name", list(STYLE_PATHS))
def test_a_first_candidate_never_stops_generation(task_name, style):
    task = get_task(task_name)
    final, paths = STYLE_PATHS[task_name]
    text = paths[style]
    assert task.extract_answer(text) == final
    assert task.extract_answer(stopped(task, text)) == final  # what evaluation scores
    # The model going on with an invented next exchange: cut there, the answer is unchanged.
    invented = f"{text}\nQuestion: And in June?\nThe best answer is A. \\boxed{{5}}"
    assert stopped(task, invented).endswith("\nQuestion:")
    assert task.extract_answer(invented) == task.extract_answer(stopped(task, invented)) == final


ANSWERS = {
    "gsm8k": lambda rng: f"\\boxed{{{rng.randint(1, 99)}}}",
    "math": lambda rng: f"\\boxed{{\\frac{{{rng.randint(1, 9)}}}{{{rng.randint(2, 9)}}}}}",
    "arc_challenge": lambda rng: f"The best answer is {rng.choice('ABCD')}.",
    "strategyqa": lambda rng: f"The answer is {rng.choice(['yes', 'no'])}.",
    "anli": lambda rng: f"The answer is {rng.choice(['entailment', 'neutral', 'contradiction'])}.",
    "exact": lambda rng: f"The answer is {rng.choice(['Paris', 'Rome', 'Oslo'])}.",
}
FILLER = [
    "Let me check this.",
    "48 / 2 = 24.",
    "Question: what is asked?",  # a restated question before any answer
    "Maybe not.",
    "User:",
]


def random_response(rng: random.Random, task_name: str) -> str:
    parts = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if kind < 0.4:
            parts.append(ANSWERS[task_name](rng))
        elif kind < 0.6:
            parts.append(rng.choice(["Question: next?", "Problem 2: x", "Human: hi"]))
        else:
            parts.append(rng.choice(FILLER))
    return "".join(part + rng.choice(["\n", " ", "\n\n"]) for part in parts).rstrip()


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("task_name", list(ANSWERS))
def test_stopping_never_changes_the_extracted_answer(task_name, seed):
    """Soundness: wherever the rule stops, the answer of the text so far is the answer of the
    whole text; with candidates, corrections and invented next exchanges in any order."""
    task = (
        Task.from_spec(TaskSpec(name="exact", answer_type="exact_match"))
        if task_name == "exact"
        else get_task(task_name)
    )
    rng = random.Random(seed)
    for _ in range(5):
        text = random_response(rng, task_name)
        assert task.extract_answer(stopped(task, text)) == task.extract_answer(text), text


def test_stop_when_ends_each_row_on_its_own(tiny_students):
    """A row finished by `stop_when` is padded by transformers; its pads are not completion tokens."""
    from qrdistill.models import generate, load_causal_lm, render_prompt

    model, tokenizer = load_causal_lm(str(tiny_students[0]))
    prompts = [
        render_prompt(tokenizer, "A much longer question about clips sold in April and May?"),
        render_prompt(tokenizer, "Short?"),
    ]
    plain = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=2)
    calls = []

    def finish_first_row_at_first_step(text):  # rows are sorted longest first, so row 0 is prompt 0
        calls.append(text)
        return len(calls) == 1

    stopped = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=6,
        batch_size=2,
        stop_when=finish_first_row_at_first_step,
    )
    assert stopped[0].completion_tokens == 1
    assert stopped[1].completion_tokens == plain[1].completion_tokens
    assert stopped[1].text == plain[1].text
    assert stopped[1].mean_logprob == pytest.approx(plain[1].mean_logprob, abs=1e-5)


@pytest.mark.parametrize(
    "text, loops",
    [
        ("<h2>" * 12, True),
        ('o"\n\n' + '"No"\n\n' * 8, True),  # a period of 6 characters, 8 times
        ('"No"\n\n' * 7, False),  # 42 characters: not yet 48
        ("Step 1: add.\n" * 4, True),  # a whole line four times
        ("x" * 47, False),
        ("x" * 48, True),
        ("48 / 2 = 24. 48 + 24 = 72. So 72 clips in all: \\boxed{72}", False),
        ("1000000", False),
    ],
)
def test_looping_detects_a_repeated_tail(text, loops):
    assert looping(text) is loops
