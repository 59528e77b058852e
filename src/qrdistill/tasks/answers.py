"""Final-answer extraction from free-form model responses, one extractor per answer type.

Model output is data: it is only ever matched with regular expressions, never evaluated.

One rule for every answer type when a response holds several final-answer statements:
**the last statement wins**. Reasoning often states a tentative answer, checks it and corrects
itself ("... so B. Wait, that ignores the leap year; the best answer is C."), so the last
statement is the one the model ended on. Each extractor tries an ordered list of patterns,
strongest first (an explicit statement such as `\\boxed{}` or "The answer is X"), and only falls
back to weaker evidence when no stronger pattern occurs anywhere in the response:

- number:          last `\\boxed{}` > last "answer is N" / "#### N" > last number in the text
- math:            last `\\boxed{}` > last "answer is <expr>"; otherwise None (no guessing)
- multiple choice: last "answer is X" letter > last "answer is <option text>" naming exactly one
                   option > a final line that is only a letter ("(B)", "**B**", "B. text") >
                   a final line that is exactly one option's text. Never "the last capital
                   letter anywhere": a letter counts only inside one of these statements.
- label set (yes/no, NLI, user labels): last "answer is L" > the final line starting with a
                   label > the first line starting with a label ("Yes, because ..."). Labels match
                   whole words only, so "not" and "know" are never "no".
- exact match:     last "answer is X" (rest of the line) > the final non-empty line.

**Where a response ends** (`response_end`): at the end of the text, or earlier where the model
has finished its turn and opens a new exchange: a line starting "Question:", "Problem:", "Q:",
"User:" or "Human:" after a complete final-answer statement of the task's format (base models
go on to invent the next question and answer it). Everything from that line on is not the
response, so no statement in it is read. Evaluation stops generating at exactly that point
(`qrdistill.evaluation.stopping`): nothing after it can change the answer, which is what makes
stopping early safe. A first candidate answer never ends the response, since a later statement
may correct it (backward and tree-of-thought paths state one before checking it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Unicode variants a model or a data set may use for plain ASCII signs.
_ASCII_SIGNS = str.maketrans(
    {"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " "}
)

# "The final answer is", "Answer:", "**Answer:**", "the correct answer would be", ... The verb or
# colon is required: in "he must answer 3 questions" the 3 is not an answer.
_ANCHOR = r"(?i:\banswer\b)[\s*_]*(?:(?i:is|would be|will be|was)\b|[:=])[\s*_:]*"

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?"
_NUMBER_RE = re.compile(r"(?<![\w.])" + _NUMBER + r"(?:\s*%)?")
_ANCHORED_NUMBER_RE = re.compile(_ANCHOR + r"(?:\\?\$\s*)?(" + _NUMBER + r"(?:\s*\\?%)?)(?![\d])")
_HASH_NUMBER_RE = re.compile(r"####\s*\$?\s*(" + _NUMBER + r")")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _statements(pattern: re.Pattern[str] | str, text: str) -> list[re.Match[str]]:
    """Every match of `pattern`, overlapping ones included, in order of position.

    Overlaps matter: in "Final Answer: The final answer is $[2,5)$" the second "answer is"
    lies inside the first statement's text and is the one that holds the answer.
    """
    pattern = re.compile(pattern)
    found, pos = [], 0
    while (match := pattern.search(text, pos)) is not None:
        found.append(match)
        pos = match.start() + 1
    return found


def clean_text(text: str | None) -> str:
    """Unicode minus and dashes to '-', exotic spaces to ' '. Safe for every answer type."""
    return (text or "").translate(_ASCII_SIGNS)


def last_boxed(text: str) -> str | None:
    """Content of the last closed `\\boxed{...}` (or `\\fbox{...}`), nested braces balanced."""
    for opening in reversed(list(_BOXED_RE.finditer(text))):
        depth = 1
        for pos in range(opening.end(), len(text)):
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            if depth == 0:
                return text[opening.end() : pos].strip()
    return None


def normalize_number(text: str) -> str:
    """'$1,000' -> '1000', '18 dollars' -> '18', '\\$18.50' -> '18.50', '25\\%' -> '25%'.

    Anything that is not a plain number with optional currency, units or percent is returned
    unchanged (minus surrounding `$` and spaces) for math-verify to compare.
    """
    text = clean_text(text).strip()
    text = re.sub(r"\\text\{\s*([^{}]*)\}", r" \1 ", text)  # \text{ dollars} -> dollars
    text = text.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\%", "%")
    text = text.replace("\\$", "").replace("$", "").strip(" .")
    match = re.fullmatch(
        r"(?:[A-Za-z€£¥]+\s*)?(" + _NUMBER + r")\s*(%?)\s*([A-Za-z][A-Za-z ./]*)?", text
    )
    if match is None:
        return text
    number, percent = match.group(1), match.group(2)
    return re.sub(r"(?<=\d),(?=\d{3})", "", number).replace(" ", "") + percent


def extract_number(text: str | None) -> str | None:
    """The final numeric answer as a normalised string ("18", "-3", "0.5", "3/4", "25%").

    Order: last `\\boxed{}` > last "answer is N" or "#### N" > last number anywhere.
    """
    text = clean_text(text)
    boxed = last_boxed(text)
    if boxed:
        return normalize_number(boxed)
    statements = _statements(_ANCHORED_NUMBER_RE, text) + _statements(_HASH_NUMBER_RE, text)
    if statements:
        return normalize_number(max(statements, key=lambda m: m.start()).group(1))
    numbers = _NUMBER_RE.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


_ANCHORED_MATH_RE = re.compile(_ANCHOR + r"(?:\$([^$]+)\$|\\\((.+?)\\\)|([^\n]+))")


def extract_math(text: str | None) -> str | None:
    """The final answer as a LaTeX expression string, e.g. "\\frac{1}{2}" or "[2,5)".

    Order: last `\\boxed{}` > last "answer is $expr$" (or the rest of that line); else None.
    """
    text = clean_text(text)
    boxed = last_boxed(text)
    if boxed:
        return boxed
    statements = _statements(_ANCHORED_MATH_RE, text)
    if not statements:
        return None
    last = statements[-1]
    inline_math = last.group(1) or last.group(2)
    answer = inline_math if inline_math else re.split(r"\.\s|\.$", last.group(3))[0]
    answer = answer.strip().strip("*").strip()
    return answer or None


def letters_for(choices: Sequence[str] | None) -> str:
    """Valid option letters: one per choice, or A-H when the choices are unknown.

    "I" is deliberately not a default letter: "The answer is I think C" must not read as "I".
    """
    return "ABCDEFGHIJKLMNOP"[: len(choices)] if choices else "ABCDEFGH"


def _normalize_phrase(text: str) -> str:
    text = re.sub(r"[*_`\"'“”‘’]", "", clean_text(text).lower())
    text = re.sub(r"[^\w\s/.-]", " ", text)
    return " ".join(text.split()).strip(" .")


def _option_named_in(phrase: str, choices: Sequence[str], whole: bool) -> str | None:
    """The letter of the one option whose text `phrase` contains as whole words (or, with
    `whole`, is exactly); None when no option or several options match."""
    phrase = _normalize_phrase(phrase)
    options = [_normalize_phrase(choice) for choice in choices]
    hits = [
        letter
        for letter, option in zip(letters_for(choices), options)
        if phrase
        and option
        and (phrase == option if whole else re.search(rf"(?<!\w){re.escape(option)}(?!\w)", phrase))
    ]
    return hits[0] if len(hits) == 1 else None


def _final_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def extract_choice(text: str | None, choices: Sequence[str] | None = None) -> str | None:
    """The chosen option letter ("A".."H", or as many letters as `choices`).

    Order: last "answer is X" letter ("The best answer is B.", "Answer: (B)", "**Answer:** **B**")
    > last "answer is <option text>" naming exactly one option (needs `choices`)
    > a final line that is only a letter ("(B)", "**B**", "B.", "B) text")
    > a final line that is exactly one option's text (needs `choices`); else None.
    Letters are upper case only: "the answer is a dog" names no option.
    """
    text = clean_text(text)
    letters = letters_for(choices)
    letter = rf"([{letters}])(?![A-Za-z0-9'])"
    anchored = re.compile(_ANCHOR + r"(?i:(?:option|choice)\s*)?[(\[*_\s]*" + letter)
    statements = _statements(anchored, text)
    if statements:
        return statements[-1].group(1)
    if choices:
        phrases = [m.group(1) for m in _statements(_ANCHOR + r"([^\n]+)", text)]
        if phrases:
            found = _option_named_in(phrases[-1], choices, whole=False)
            if found:
                return found
    final = _final_line(text)
    lone = re.fullmatch(r"[(\[*_\s]*" + letter + r"[)\].:*_\s]*(?:(?<=[).:])\s*\S.*)?", final)
    if lone:
        return lone.group(1)
    if choices:
        return _option_named_in(final, choices, whole=True)
    return None


def extract_label(text: str | None, vocabulary: Mapping[str, str]) -> str | None:
    """The canonical label of the final answer; `vocabulary` maps accepted words to labels
    (e.g. {"yes": "yes", "no": "no"} or {"true": "entailment", "entailment": "entailment", ...}).

    Order: last "answer is L" > the final line starting with a label > the first line starting
    with a label. Whole words only, case-insensitive: "not", "know", "nothing" are never "no".
    """
    text = clean_text(text)
    words = "|".join(sorted((re.escape(word) for word in vocabulary), key=len, reverse=True))
    label = rf"(?i:({words}))\b"
    statements = _statements(_ANCHOR + r"[(\[\"'“]*" + label, text)
    if statements:
        return vocabulary[statements[-1].group(1).lower()]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines[-1:] + lines[:1]:
        starts = re.match(r"[\W_]*" + label, line)
        if starts:
            return vocabulary[starts.group(1).lower()]
    return None


def normalize_free_text(text: str) -> str:
    """Lower case, no markdown or quotes, single spaces, no trailing full stop."""
    return _normalize_phrase(text)


def extract_free_text(text: str | None) -> str | None:
    """The final answer as normalised free text.

    Order: last "answer is X" (rest of that line, up to the end of the sentence) > the final
    non-empty line.
    """
    text = clean_text(text)
    statements = [m.group(1) for m in _statements(_ANCHOR + r"([^\n]+)", text)]
    raw = re.split(r"\.\s", statements[-1])[0] if statements else _final_line(text)
    return normalize_free_text(raw) or None


_STATEMENT = r"\banswer\s+is\s*:?\s*\**\s*"
# A line that opens a new exchange: "Question:", "**Problem 2:**", "Q:", "User:", "Human:".
_NEW_TURN_RE = re.compile(
    r"^[\s*#_]*(?:question|problem|q|user|human)\s*\d*[\s*_]*:", re.IGNORECASE | re.MULTILINE
)


def _closed_boxed_end(text: str) -> int | None:
    """End index of the first \\boxed{...} whose braces are balanced, or None."""
    opening = _BOXED_RE.search(text)
    if opening is None:
        return None
    depth = 1
    for pos in range(opening.end(), len(text)):
        depth += {"{": 1, "}": -1}.get(text[pos], 0)
        if depth == 0:
            return pos + 1
    return None


def _format_statement(answer_type: str, words: Sequence[str]) -> re.Pattern[str] | None:
    """The statement the task's format line asks for (`tasks.base`); None: a closed \\boxed{}."""
    if answer_type == "multiple_choice":
        # (?-i:...): the letter must be upper case although the words match in any case.
        return re.compile(r"\bbest " + _STATEMENT + r"(?-i:\(?[A-Z]\)?)(?!\w)", re.IGNORECASE)
    if answer_type in ("yes_no", "label_set"):
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        return re.compile(_STATEMENT + rf"(?:{alternatives})\b", re.IGNORECASE)
    if answer_type == "exact_match":
        return re.compile(_STATEMENT + r"\S", re.IGNORECASE)
    return None


def first_statement_end(text: str, answer_type: str, words: Sequence[str] = ()) -> int | None:
    """End index of the first complete final-answer statement in the task's format ("\\boxed{72}",
    "The best answer is B", "The answer is yes"), or None. `words`: a label task's accepted
    label words; "the answer is not obvious" states no label, "the best answer is a bit unclear"
    no letter."""
    if answer_type in ("number", "math"):
        return _closed_boxed_end(text)
    match = _format_statement(answer_type, words).search(text)
    return match.end() if match else None


def response_end(text: str, answer_type: str, words: Sequence[str] = ()) -> int:
    """Where the response ends: the start of the first line opening a new exchange after its
    first complete final-answer statement, else the end of the text (module docstring)."""
    statement = first_statement_end(text, answer_type, words)
    if statement is not None:
        line_end = text.find("\n", statement)
        turn = _NEW_TURN_RE.search(text, line_end) if line_end != -1 else None
        if turn is not None:
            return turn.start()
    return len(text)
