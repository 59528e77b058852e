"""lm-evaluation-harness's conventions (evaluation/lm_eval_scores.py) on real-looking responses,
set against the project's own score where the two differ."""

import pytest

from qrdistill.evaluation.lm_eval_scores import (
    best_letter,
    flexible_extract,
    gsm8k_normalize,
    lm_eval_scores,
    strict_match,
)
from qrdistill.tasks import get_task

GSM8K, MATH, ARC = get_task("gsm8k"), get_task("math"), get_task("arc_challenge")

# A GSM8K-style response in the data set's own format, ending "#### N".
HASH_RESPONSE = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)
# The format our prompt asks for: no "####", the answer boxed.
BOXED_RESPONSE = (
    "In May she sold half of 48, which is 24 clips.\n"
    "In total she sold 48 + 24 = 72 clips.\nThe answer is \\boxed{72}."
)


def test_strict_and_flexible_differ_on_a_response_without_the_hash_line():
    assert lm_eval_scores(GSM8K, HASH_RESPONSE, "72") == {
        "strict_match": True,
        "flexible_extract": True,
    }
    assert strict_match(BOXED_RESPONSE) == "[invalid]"
    assert flexible_extract(BOXED_RESPONSE) == "72"
    assert lm_eval_scores(GSM8K, BOXED_RESPONSE, "72") == {
        "strict_match": False,
        "flexible_extract": True,
    }
    assert GSM8K.is_correct(BOXED_RESPONSE, "72")  # ours reads the box


@pytest.mark.parametrize(
    "response, strict, flexible",
    [
        # Commas, dollar signs and a trailing full stop are removed from both strings.
        ("She pays 2 * $500 = $1,000.\n#### $1,000", "[invalid]", "$1,000"),
        ("Total: 2 * 500 = 1,000 dollars.\n#### 1,000", "1,000", "1,000"),
        ("So the total cost is $1,000.", "[invalid]", "$1,000."),
        # strict-match takes the first "#### ", flexible-extract the last number.
        ("#### 900\nWait, I forgot the tax: 900 + 100 = 1000.\n#### 1000", "900", "1000"),
    ],
)
def test_gsm8k_filters_and_their_normalisation(response, strict, flexible):
    assert (strict_match(response), flexible_extract(response)) == (strict, flexible)
    scores = lm_eval_scores(GSM8K, response, "1000")
    assert scores == {
        "strict_match": gsm8k_normalize(strict) == "1000",
        "flexible_extract": gsm8k_normalize(flexible) == "1000",
    }
    assert gsm8k_normalize("$1,000.") == "1000" and gsm8k_normalize("[invalid]") == "[invalid]"


def test_gsm8k_compares_strings_where_ours_compares_numbers():
    response = "Each box holds 4.5 kg, so 4 boxes hold 18.00 kg.\n#### 18.00"
    assert lm_eval_scores(GSM8K, response, "18") == {
        "strict_match": False,
        "flexible_extract": False,
    }
    assert GSM8K.is_correct(response, "18")  # math-verify: 18.00 is 18


def test_gsm8k_conventions_read_only_the_response_proper():
    # A base model answers, then invents the next exchange: its numbers are not the answer.
    response = BOXED_RESPONSE + "\nQuestion: Tom has 3 apples.\nAnswer: 3"
    assert lm_eval_scores(GSM8K, response, "72")["flexible_extract"] is True


def test_boxed_exact_match_is_a_string_match_where_ours_is_symbolic():
    response = "Dividing both sides by 2 gives $x = \\boxed{\\frac12}$."
    assert lm_eval_scores(MATH, response, "0.5") == {"boxed_exact_match": False}
    assert MATH.is_correct(response, "0.5")  # math-verify: \frac12 equals 0.5
    # Whitespace around the box's content and the gold is all that is normalised.
    assert lm_eval_scores(MATH, response, " \\frac12 ") == {"boxed_exact_match": True}
    assert lm_eval_scores(MATH, response, "\\frac{1}{2}") == {"boxed_exact_match": False}
    # The last closed box counts; no box is wrong.
    corrected = "First \\boxed{3}, but the sign was wrong: \\boxed{-3 }."
    assert lm_eval_scores(MATH, corrected, "-3") == {"boxed_exact_match": True}
    assert lm_eval_scores(MATH, "The answer is $-3$.", "-3") == {"boxed_exact_match": False}
    assert MATH.is_correct("The answer is $-3$.", "-3")


CHOICES = ["iron", "water", "salt", "sand"]


@pytest.mark.parametrize(
    "response, letter, ours",
    [
        ("Water is a liquid at room temperature.\nThe best answer is B.", "B", "B"),
        ("Iron melts at 1538 C. The best answer is A. No: the best answer is **(B)**.", "B", "B"),
        # Ours also reads "Answer: (B)" and an option's text; the letter convention does not.
        ("Water is the liquid.\nAnswer: (B)", None, "B"),
        ("The answer is water.", None, "B"),
        ("the best answer is b", None, None),  # a lower-case letter names no option
    ],
)
def test_letter_match_reads_only_the_best_answer_statement(response, letter, ours):
    assert best_letter(response) == letter
    assert lm_eval_scores(ARC, response, "B", CHOICES) == {"letter_match": letter == "B"}
    assert ARC.extract_answer(response, CHOICES) == ours


@pytest.mark.parametrize("task", ["strategyqa", "boolq", "anli"])
def test_tasks_without_a_convention_have_none(task):
    assert lm_eval_scores(get_task(task), "The answer is yes.", "yes") is None
