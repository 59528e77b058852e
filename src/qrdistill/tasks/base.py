"""A task: how to prompt for an answer in a fixed format, and how to check a response.

The base prompt (question, options, optional task instruction, answer-format line) is what the
teacher's style wrappers wrap and what students are trained and evaluated on. The answer-format
line is what makes extraction reliable: every answer type asks for one explicit final statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qrdistill.tasks import answers
from qrdistill.tasks.config import AnswerType, TaskSpec
from qrdistill.tasks.equivalence import DEFAULT_TIMEOUT_S, math_equal

_FORMAT_LINES: dict[str, str] = {
    "number": "Give the final answer as a number inside \\boxed{}.",
    "math": "Give the final answer inside \\boxed{}.",
    "multiple_choice": 'End your response with "The best answer is X." where X is the letter of the correct option.',
    "yes_no": 'End your response with "The answer is yes." or "The answer is no."',
    "label_set": 'End your response with "The answer is L." where L is one of: {labels}.',
    "exact_match": 'End your response with "The answer is X." where X is the final answer.',
}


def _field(example: Any, name: str) -> Any:
    """Read a field of an `Example` or of a dict with the same fields."""
    return example.get(name) if isinstance(example, Mapping) else getattr(example, name, None)


@dataclass(frozen=True)
class Task:
    """A named task with one answer type. See `qrdistill.tasks.answers` for the extraction rules.

    `vocabulary` (label answer types only) maps every accepted word, lower case, to its canonical
    label, e.g. {"true": "entailment", "entailment": "entailment", ...}.
    """

    name: str
    answer_type: AnswerType
    description: str = ""
    instruction: str | None = None
    labels: tuple[str, ...] = ()
    vocabulary: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> Task:
        labels: tuple[str, ...] = ()
        if spec.answer_type == "yes_no":
            labels = ("yes", "no")
        elif spec.answer_type == "label_set":
            labels = tuple(dict.fromkeys(label.strip().lower() for label in spec.labels or ()))
        return cls(
            name=spec.name,
            answer_type=spec.answer_type,
            description=spec.description,
            instruction=spec.instruction,
            labels=labels,
            vocabulary={label: label for label in labels},
        )

    # -- prompting -----------------------------------------------------------------------------

    def build_prompt(self, example: Any) -> str:
        """The base prompt: question, lettered options ("A. text" lines) for multiple choice,
        the task instruction if any, and the line fixing the answer format."""
        parts = [str(_field(example, "question")).strip()]
        if self.answer_type == "multiple_choice":
            choices = _field(example, "choices")
            if not choices:
                raise ValueError(f"task '{self.name}': a multiple-choice example needs 'choices'")
            parts.append(
                "\n".join(
                    f"{letter}. {choice}"
                    for letter, choice in zip(answers.letters_for(choices), choices)
                )
            )
        if self.instruction:
            parts.append(self.instruction.strip())
        parts.append(_FORMAT_LINES[self.answer_type].replace("{labels}", ", ".join(self.labels)))
        return "\n\n".join(parts)

    # -- checking ------------------------------------------------------------------------------

    def response(self, text: str | None) -> str:
        """The response proper: `text` up to where the model's turn ended
        (`answers.response_end`). Extraction reads only this; evaluation stops generating there."""
        text = text or ""
        return text[: answers.response_end(text, self.answer_type, list(self.vocabulary))]

    def extract_answer(self, text: str | None, choices: Sequence[str] | None = None) -> str | None:
        """The normalised final answer of a response (its last final-answer statement before the
        end of its turn), or None when it states none.

        multiple choice -> a letter; yes/no -> "yes"/"no"; label sets (NLI) -> the canonical
        label; number -> a normalised number string; math -> the LaTeX expression; exact match
        -> normalised text. `choices` (optional) enables option-text matching and limits letters.
        """
        kind = self.answer_type
        text = self.response(text)
        if kind == "number":
            return answers.extract_number(text)
        if kind == "math":
            return answers.extract_math(text)
        if kind == "multiple_choice":
            return answers.extract_choice(text, choices)
        if kind in ("yes_no", "label_set"):
            return answers.extract_label(text, self.vocabulary)
        return answers.extract_free_text(text)

    def normalize_gold(self, gold: str, choices: Sequence[str] | None = None) -> str:
        """The gold answer in the form `extract_answer` returns; ValueError if it cannot be one
        (an unknown label, a letter outside the options)."""
        gold = answers.clean_text(str(gold)).strip()
        kind = self.answer_type
        if kind == "number":
            return answers.normalize_number(gold)
        if kind == "math":
            return gold.strip("$ ")
        if kind == "multiple_choice":
            letter = gold.strip("()[]*. ").upper()
            if len(letter) != 1 or letter not in answers.letters_for(choices):
                raise ValueError(
                    f"task '{self.name}': gold {gold!r} is not an option letter "
                    f"({', '.join(answers.letters_for(choices))})"
                )
            return letter
        if kind in ("yes_no", "label_set"):
            label = self.vocabulary.get(gold.strip(" .").lower())
            if label is None:
                raise ValueError(
                    f"task '{self.name}': unknown label {gold!r}; allowed: {', '.join(self.labels)}"
                )
            return label
        return answers.normalize_free_text(gold)

    def answers_match(
        self, answer: str | None, gold: str, choices: Sequence[str] | None = None
    ) -> bool:
        """Compare an extracted answer with the gold answer (symbolically for number/math)."""
        gold = self.normalize_gold(gold, choices)  # first, so that a bad gold always raises
        return self.equivalent(answer, gold)

    def equivalent(self, answer: str | None, other: str) -> bool:
        """Whether two extracted answers are the same answer: symbolically for number and math
        ("0.5" and "\\frac12"), as normalised strings otherwise. Scoring and ensemble votes
        both compare answers so."""
        if answer is None:
            return False
        if self.answer_type in ("number", "math"):
            return math_equal(answer, other, timeout_s=self.timeout_s)
        return answer == other

    def is_correct(self, text: str | None, gold: str, choices: Sequence[str] | None = None) -> bool:
        """True when the response `text` ends on the gold answer (as stored in the data set)."""
        return self.answers_match(self.extract_answer(text, choices), gold, choices)
