"""Answer extraction and verification: exact outcomes on realistic and adversarial responses."""

from __future__ import annotations

import pytest

from qrdistill.tasks import get_task

ARC_CHOICES = ["dry palms", "wet palms", "palms covered with oil", "palms covered with lotion"]

# (task, response, expected extract_answer)
EXTRACTION = [
    # --- gsm8k (number) -----------------------------------------------------------------------
    ("gsm8k", "She sells 9 eggs at $2 each, so she makes 9 * 2 = 18 dollars. \\boxed{18}", "18"),
    ("gsm8k", "The answer is 18.", "18"),
    ("gsm8k", "#### 72", "72"),
    ("gsm8k", "Work: 3 + 4 = 7\n#### 1,000", "1000"),
    ("gsm8k", "\\boxed{1,000}", "1000"),
    ("gsm8k", "\\boxed{1{,}000}", "1000"),
    ("gsm8k", "\\boxed{\\$18}", "18"),
    ("gsm8k", "\\boxed{18 \\text{ dollars}}", "18"),
    ("gsm8k", "The answer is $18.", "18"),
    ("gsm8k", "The answer is 18 dollars per day.", "18"),
    ("gsm8k", "**Answer:** 42", "42"),
    ("gsm8k", "Final answer: 3.5", "3.5"),
    ("gsm8k", "\\boxed{25\\%}", "25%"),
    ("gsm8k", "The answer is 25%.", "25%"),
    ("gsm8k", "The temperature drops to \\boxed{\u22125}", "-5"),
    ("gsm8k", "The answer is \u221212.", "-12"),
    ("gsm8k", "\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
    ("gsm8k", "The answer is 3/4.", "3/4"),
    ("gsm8k", "I first thought \\boxed{20}, but recounting gives \\boxed{18}.", "18"),
    ("gsm8k", "The answer is 20. Wait, I double counted. The answer is 18.", "18"),
    ("gsm8k", "The answer is 18, not 20.", "18"),
    ("gsm8k", "The answer is not 20; she makes 18.", "18"),
    ("gsm8k", "9 + 9 = 18 so she makes 18", "18"),
    ("gsm8k", "It is either 18 or 20.", "20"),
    ("gsm8k", "\\boxed{18}\n\nLet me know if you need anything else about step 2!", "18"),
    ("gsm8k", "", None),
    ("gsm8k", "I cannot solve this problem.", None),
    ("gsm8k", "\\boxed{}", None),
    ("gsm8k", "The answer is 1,234,567.", "1234567"),
    ("gsm8k", "Answer = 0.75", "0.75"),
    ("gsm8k", "She pays €57 in total. The answer is €57.", "57"),
    ("gsm8k", "#### 18\nThe answer is 20", "20"),
    ("gsm8k", "He must answer 3 questions per hour, so in 8 hours he answers 24.", "24"),
    ("gsm8k", "**Answer:** $1,250.50", "1250.50"),
    # --- math -----------------------------------------------------------------------------------
    ("math", "Therefore the graph has $\\boxed{2}$ vertical asymptotes.", "2"),
    ("math", "So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("math", "The domain is $\\boxed{[2,5)}$.", "[2,5)"),
    ("math", "\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("math", "Final Answer: The final answer is $[2,5)$. I hope it is correct.", "[2,5)"),
    ("math", "The answer is $\\frac{14}{3}$.", "\\frac{14}{3}"),
    ("math", "The answer is \\(\\pi/2\\).", "\\pi/2"),
    ("math", "The answer is 7.", "7"),
    ("math", "We get 3, then 5, and finally 7.", None),
    ("math", "", None),
    ("math", "\\boxed{3} is wrong; the right value is \\boxed{4}", "4"),
    ("math", "\\fbox{10}", "10"),
    (
        "math",
        "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
    ),
    ("math", "Answer: $\u22123$", "-3"),
    ("math", "\\boxed{x^{2}+1} and then \\boxed{unclosed", "x^{2}+1"),
    # --- multiple choice (arc_challenge / commonsense_qa / date_understanding) -------------------
    ("arc_challenge", "Wet palms cause less friction... The best answer is A.", "A"),
    ("arc_challenge", "The best answer is (C)", "C"),
    ("arc_challenge", "The best answer is **D**.", "D"),
    ("arc_challenge", "Answer: B", "B"),
    ("arc_challenge", "**Answer:** (B) wet palms", "B"),
    ("arc_challenge", "The correct answer is option C.", "C"),
    ("arc_challenge", "The answer is [D]", "D"),
    ("arc_challenge", "answer: B", "B"),
    ("arc_challenge", "The best answer is A. Option B is wrong because water lubricates.", "A"),
    (
        "arc_challenge",
        "The best answer is B. Wait, oil reduces friction. The best answer is A.",
        "A",
    ),
    ("arc_challenge", "Answer: C\nThe best answer is D.", "D"),
    ("arc_challenge", "A lot of heat comes from friction. B and C reduce it.", None),
    ("arc_challenge", "I think it is A or B, hard to say.", None),
    ("arc_challenge", "The answer is a matter of friction.", None),
    ("arc_challenge", "The best answer is I think C", None),  # "I" is no option letter
    ("arc_challenge", "Rubbing creates friction.\n\n(B)", "B"),
    ("arc_challenge", "Rubbing creates friction.\n\n**B**", "B"),
    ("arc_challenge", "Rubbing creates friction.\nB.", "B"),
    ("arc_challenge", "Rubbing creates friction.\nB) wet palms", "B"),
    ("arc_challenge", "Rubbing creates friction.\nA lot of it.", None),
    ("arc_challenge", "", None),
    ("arc_challenge", "The answer is not A; it is B", None),
    ("arc_challenge", "The answer is Z.", None),
    ("arc_challenge", "The best answer is  B  because dry skin has more friction", "B"),
    ("arc_challenge", "The best answer is: **(A)**", "A"),
    ("arc_challenge", "Final answer: A's reasoning is flawed", None),
    ("commonsense_qa", "People go to a bank. The best answer is E.", "E"),
    ("commonsense_qa", "the best answer is (e)", None),
    ("date_understanding", "Today is 05/01/2021. The best answer is F.", "F"),
    ("date_understanding", "The best answer is (F) 05/01/2021.", "F"),
    # --- yes/no (strategyqa) ----------------------------------------------------------------------
    ("strategyqa", "Frost is common in December. The answer is yes.", "yes"),
    ("strategyqa", "The answer is No.", "no"),
    ("strategyqa", "The answer is: **Yes**", "yes"),
    ("strategyqa", "Answer: no", "no"),
    ("strategyqa", "Yes. College commencements happen in December.", "yes"),
    ("strategyqa", "No, hydrogen's atomic number squared is 1.", "no"),
    ("strategyqa", "I don't know.", None),
    ("strategyqa", "Not really sure, there is nothing to go on.", None),
    ("strategyqa", "I know the Spice Girls had five members.", None),
    ("strategyqa", "The answer is not yes.", None),
    ("strategyqa", "The answer is yes. Hmm, actually the answer is no.", "no"),
    ("strategyqa", "Reasoning first.\nNo.", "no"),
    ("strategyqa", "Yes it might seem so.\nThe answer is no.", "no"),
    ("strategyqa", "", None),
    ("strategyqa", "The answer is yesterday's news.", None),
    ("strategyqa", "Nope.", None),
    ("strategyqa", "**Yes**", "yes"),
    ("strategyqa", 'The answer is "no".', "no"),
    ("strategyqa", "To answer no one needs a source: the answer is yes.", "yes"),
    # --- NLI (anli) -----------------------------------------------------------------------------
    ("anli", "The hypothesis follows. The answer is entailment.", "entailment"),
    ("anli", "The answer is Contradiction.", "contradiction"),
    ("anli", "The answer is neutral", "neutral"),
    ("anli", "Answer: true", "entailment"),
    ("anli", "Answer: False", "contradiction"),
    ("anli", "The answer is neither.", "neutral"),
    ("anli", "Neutral. The premise says nothing about it.", "neutral"),
    ("anli", "It is not entailment. The answer is contradiction.", "contradiction"),
    ("anli", "The premise is true but unrelated.", None),
    ("anli", "", None),
    ("anli", "The answer is **entailment**.", "entailment"),
    ("anli", "The answer is entailed.", None),
]


@pytest.mark.parametrize("task_name, response, expected", EXTRACTION)
def test_extract_answer(task_name: str, response: str, expected: str | None) -> None:
    assert get_task(task_name).extract_answer(response) == expected


# (task, response, gold as stored in the data set, expected is_correct)
VERIFICATION = [
    # --- number -----------------------------------------------------------------------------------
    ("gsm8k", "\\boxed{18}", "18", True),
    ("gsm8k", "\\boxed{18.00}", "18", True),
    ("gsm8k", "The answer is $18.", "18", True),
    ("gsm8k", "The answer is 18 dollars.", "18", True),
    ("gsm8k", "\\boxed{1,000}", "1000", True),
    ("gsm8k", "\\boxed{1000}", "1,000", True),
    ("gsm8k", "\\boxed{\\frac{1}{2}}", "0.5", True),
    ("gsm8k", "The answer is 0.5", "1/2", True),
    ("gsm8k", "\\boxed{25\\%}", "25", True),
    ("gsm8k", "\\boxed{\u22125}", "-5", True),
    ("gsm8k", "\\boxed{-5}", "\u22125", True),
    ("gsm8k", "\\boxed{5}", "-5", False),
    ("gsm8k", "\\boxed{19}", "18", False),
    ("gsm8k", "The answer is 18, not 20.", "20", False),
    ("gsm8k", "I first wrote \\boxed{18} but it is \\boxed{20}", "18", False),
    ("gsm8k", "It is either 18 or 20.", "18", False),
    ("gsm8k", "", "18", False),
    ("gsm8k", "I have no idea.", "18", False),
    ("gsm8k", "#### 72", "72", True),
    ("gsm8k", "\\boxed{180}", "18", False),
    ("gsm8k", "\\boxed{18}", "180", False),
    ("gsm8k", "\\boxed{1.8}", "18", False),
    # --- math -------------------------------------------------------------------------------------
    ("math", "\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", True),
    ("math", "\\boxed{\\frac{\\sqrt3}{2}}", "\\frac{\\sqrt{3}}{2}", True),
    ("math", "\\boxed{[2, 5)}", "[2,5)", True),
    ("math", "\\boxed{[2, 5]}", "[2,5)", False),
    ("math", "\\boxed{0.5}", "\\frac{1}{2}", True),
    ("math", "\\boxed{x = 2}", "2", True),
    ("math", "\\boxed{2}", "3", False),
    ("math", "\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),
    ("math", "The final answer is $\\pi$.", "\\pi", True),
    ("math", "\\boxed{3.14}", "\\pi", False),
    ("math", "\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("math", "\\boxed{(x+1)^2}", "x^2+2x+1", True),
    ("math", "\\boxed{\u22121}", "-1", True),
    ("math", "No final answer here, only 2.", "2", False),
    ("math", "", "2", False),
    ("math", "\\boxed{1,2,3}", "\\{1,2,3\\}", True),
    ("math", "\\boxed{10\\%}", "0.1", True),
    ("math", "\\boxed{\\text{(C)}}", "\\text{(C)}", True),
    # --- multiple choice --------------------------------------------------------------------------
    ("arc_challenge", "The best answer is A.", "A", True),
    ("arc_challenge", "The best answer is A.", "B", False),
    ("arc_challenge", "The best answer is (B)", "B", True),
    ("arc_challenge", "The best answer is B. Option A is wrong.", "A", False),
    ("arc_challenge", "A lot of people say B.", "B", False),
    ("arc_challenge", "", "A", False),
    ("commonsense_qa", "Answer: E", "E", True),
    ("commonsense_qa", "**E**", "E", True),
    ("date_understanding", "The best answer is C.", "C", True),
    # --- yes/no -----------------------------------------------------------------------------------
    ("strategyqa", "The answer is yes.", "Yes", True),
    ("strategyqa", "The answer is yes.", "No", False),
    ("strategyqa", "No.", "no", True),
    ("strategyqa", "I don't know.", "No", False),
    ("strategyqa", "The answer is not yes.", "Yes", False),
    ("strategyqa", "", "Yes", False),
    # --- NLI --------------------------------------------------------------------------------------
    ("anli", "The answer is true.", "entailment", True),
    ("anli", "The answer is entailment.", "true", True),
    ("anli", "The answer is neither.", "neutral", True),
    ("anli", "The answer is false.", "contradiction", True),
    ("anli", "The answer is neutral.", "contradiction", False),
    ("anli", "", "neutral", False),
]


@pytest.mark.parametrize("task_name, response, gold, expected", VERIFICATION)
def test_is_correct(task_name: str, response: str, gold: str, expected: bool) -> None:
    assert get_task(task_name).is_correct(response, gold) is expected


# Option-text matching needs the options; (response, expected letter)
OPTION_TEXT = [
    ("The answer is wet palms.", "B"),
    ("The best answer is palms covered with oil", "C"),
    ("Rubbing dry skin creates the most friction.\n\nDry palms", "A"),
    ("The answer is palms.", None),  # names no single option
    ("The answer is palms covered with oil or lotion.", "C"),
    ("The answer is either dry palms or wet palms.", None),  # names two options
    ("The best answer is B", "B"),  # a letter statement still wins
    ("The best answer is E.", None),  # only four options here
    ("Surely the friction is highest with dry palms.", None),  # not a final statement
]


@pytest.mark.parametrize("response, expected", OPTION_TEXT)
def test_option_text_matching(response: str, expected: str | None) -> None:
    assert get_task("arc_challenge").extract_answer(response, choices=ARC_CHOICES) == expected


def test_is_correct_with_choices_uses_option_text() -> None:
    task = get_task("arc_challenge")
    assert task.is_correct("The answer is dry palms.", "A", choices=ARC_CHOICES)
    assert not task.is_correct("The answer is dry palms.", "B", choices=ARC_CHOICES)


@pytest.mark.parametrize(
    "task_name, gold",
    [
        ("strategyqa", "maybe"),
        ("anli", "entails"),
        ("arc_challenge", "Z"),
        ("arc_challenge", "AB"),
    ],
)
def test_unknown_gold_label_is_an_error(task_name: str, gold: str) -> None:
    with pytest.raises(ValueError, match="gold|label"):
        get_task(task_name).is_correct("The answer is yes.", gold)
