import pytest

from qrdistill.evaluation.stopping import final_answer_stop, looping, stop_for_task
from qrdistill.tasks import get_task


@pytest.mark.parametrize(
    "task, text, complete",
    [
        ("gsm8k", "48 / 2 = 24, so \\boxed{72}.\n", True),
        ("gsm8k", "48 / 2 = 24, so \\boxed{72}.", False),  # the line may still go on
        ("math", "so \\boxed{\\frac{1}{2}", False),  # braces still open
        ("math", "so \\boxed{\\frac{1}{2}}\nmore", True),
        ("arc_challenge", "The best answer is B.\nQuestion:", True),
        ("arc_challenge", "The best answer is (C)\n", True),
        ("arc_challenge", "The best answer is: **B**\n", True),
        (
            "arc_challenge",
            "The best answer is a bit unclear.\n",
            False,
        ),  # lower-case word, not a letter
        ("arc_challenge", "the answer is 5\n", False),  # not the multiple-choice statement
        ("strategyqa", "The answer is not obvious.\nThen", False),  # "no" inside "not"
        ("strategyqa", "So the answer is yes.\n", True),
        ("anli", "The answer is Neutral.\n", True),
        ("anli", "The answer is neither.\n", True),  # an accepted alias
    ],
)
def test_stops_only_after_a_complete_answer_line(task, text, complete):
    assert stop_for_task(get_task(task))(text) is complete


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


def test_numbers_stop_only_on_a_closed_boxed():
    assert final_answer_stop("number")("The answer is 5.\n") is False


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
