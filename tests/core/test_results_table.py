"""The results tables of README.md and docs/BENCHMARKS.md quote benchmarks/results/*.json: every
value, target and met they print is the one in the file the row names.

A results table is any Markdown table whose header has the columns `value`, `file` and `figure`
(others, such as `#`, `what`, `target`, `met`, `command`, are free; `target` and `met` are
checked when present). Per row:
- file: `benchmarks/results/NAME.json`, which must exist;
- figure: a key of that file's `figures` object, whose `value` is a number;
- value: that number as printed (bold allowed), rounded to the decimals shown, thousands
  separated by commas or not, optionally followed by a unit without digits ("7,197 MB");
- target: when the file's target is a comparison (">= 0.9"), the cell holds it (≥ and ≤ too);
  otherwise the cell claims no comparison;
- met: "yes" for true, "no" for false, "—" (or "-", empty) for null; words may follow.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/BENCHMARKS.md")
REQUIRED = ("value", "file", "figure")
NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
COMPARISON = re.compile(rf"(<=|>=|==|<|>)\s*({NUMBER})")


def _cells(line: str) -> list[str]:
    """The cells of a table line; `\\|` is a pipe inside a cell."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _plain(cell: str) -> str:
    return cell.replace("**", "").replace("`", "").replace("−", "-").strip()


def results_rows(text: str, source: str) -> list[dict[str, str]]:
    """The rows of every results table in `text`, each with its header's column names and
    `_where` (file and line)."""
    rows, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("|"):
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            i += 1
        header = [_plain(c).lower() for c in _cells(lines[start])]
        if not set(REQUIRED) <= set(header):
            continue
        for number in range(start + 2, i):  # after the header and its --- line
            cells = _cells(lines[number])
            row = {name: cells[k] if k < len(cells) else "" for k, name in enumerate(header)}
            rows.append({**row, "_where": f"{source}:{number + 1}"})
    return rows


def _comparisons(text: str) -> list[tuple[str, float]]:
    text = _plain(text).replace("≥", ">=").replace("≤", "<=")
    return [(op, float(num.replace(",", ""))) for op, num in COMPARISON.findall(text)]


def row_errors(row: dict[str, str], root: Path = ROOT) -> list[str]:
    """What in `row` differs from its results file; empty when the row holds."""
    where = row["_where"]
    file_name, figure = _plain(row["file"]), _plain(row["figure"])
    path = root / file_name
    if not file_name.startswith("benchmarks/results/") or not path.is_file():
        return [f"{where}: {file_name!r} is not a file under benchmarks/results/"]
    figures = json.loads(path.read_text()).get("figures", {})
    if figure not in figures:
        return [f"{where}: {file_name} has no figure {figure!r}"]
    entry = figures[figure]
    value = entry.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return [f"{where}: {file_name} {figure} has no numeric value ({value!r})"]

    errors = []
    printed = re.fullmatch(rf"({NUMBER})\s*([^\d]*)", _plain(row["value"]))
    if printed is None:
        errors.append(f"{where}: value cell {row['value']!r} is not one number and a unit")
    else:
        number = printed.group(1).replace(",", "")
        decimals = len(number.split(".")[1]) if "." in number else 0
        if abs(float(number) - value) > 0.5 * 10**-decimals * (1 + 1e-9):
            errors.append(f"{where}: value {number} but {file_name} {figure} is {value}")

    if "target" in row:
        target = entry.get("target")
        # The file's target is a comparison only when it starts with one (">= 0.9 (paper)").
        is_comparison = isinstance(target, str) and COMPARISON.match(target.strip())
        wanted = _comparisons(target)[0] if is_comparison else None
        quoted = _comparisons(row["target"])
        holds = (
            any(op == wanted[0] and math.isclose(num, wanted[1]) for op, num in quoted)
            if wanted
            else not quoted
        )
        if not holds:
            errors.append(f"{where}: target {row['target']!r} but the file's is {target!r}")

    if "met" in row:
        met = entry.get("met")
        word = _plain(row["met"]).lower()
        ok = {True: word.startswith("yes"), False: word.startswith("no")}.get(
            met, word in ("", "—", "-", "n/a") or word.startswith(("— ", "- "))
        )
        if not ok:
            errors.append(f"{where}: met {row['met']!r} but the file's is {met!r}")
    return errors


def test_every_results_table_row_quotes_its_results_file():
    rows = [
        row
        for doc in DOCS
        if (ROOT / doc).is_file()
        for row in results_rows((ROOT / doc).read_text(encoding="utf-8"), doc)
    ]
    assert rows, f"no results table (columns {', '.join(REQUIRED)}) in {' or '.join(DOCS)}"
    errors = [error for row in rows for error in row_errors(row)]
    assert errors == [], "\n".join(errors)


# The checker's own twins: a table that holds, and one wrong in each way it can be wrong.
RESULTS = {
    "figures": {
        "ratio": {"value": 0.472, "unit": "ratio", "target": "<= 0.60", "met": True},
        "rss_mb": {"value": 7197.0, "unit": "MB", "target": None, "met": None},
        "gap": {"value": 0.625, "unit": "share", "target": ">= 0.3", "met": False},
        "empty": {"value": None, "unit": "GiB", "target": None, "met": None},
    }
}
TABLE = """\
| # | what | value | target | met | file | figure | command |
|---|---|---|---|---|---|---|---|
| 1 | ratio | **0.47** | ≤ 0.60 (paper 0.69) | yes | `benchmarks/results/x.json` | `ratio` | `a \\| b` |
| 2 | memory | 7,197 MB | — | — | `benchmarks/results/x.json` | `rss_mb` | - |
| 3 | gap | 0.63 | ≥ 0.3 | no, inside the band | `benchmarks/results/x.json` | `gap` | - |
"""


@pytest.fixture
def results_root(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "x.json").write_text(json.dumps(RESULTS))
    return tmp_path


def test_a_table_that_quotes_its_file_holds(results_root):
    rows = results_rows("intro\n\n" + TABLE + "\nafter\n", "doc.md")
    assert [r["_where"] for r in rows] == ["doc.md:5", "doc.md:6", "doc.md:7"]
    assert rows[0]["command"] == "`a | b`"
    assert [row_errors(r, results_root) for r in rows] == [[], [], []]


@pytest.mark.parametrize(
    "old, new, error",
    [
        ("**0.47**", "**0.48**", "value 0.48 but benchmarks/results/x.json ratio is 0.472"),
        ("7,197 MB", "7,198 MB", "value 7198 but"),
        ("**0.47**", "0.47 (rounds 0.35-0.55)", "is not one number and a unit"),
        ("≤ 0.60 (paper", "≤ 0.50 (paper", "target '≤ 0.50 (paper 0.69)' but the file's is"),
        ("| — | — | `bench", "| ≥ 1.0 | — | `bench", "target '≥ 1.0' but the file's is None"),
        ("| yes |", "| no |", "met 'no' but the file's is True"),
        ("| no, inside", "| yes, inside", "but the file's is False"),
        ("`ratio`", "`ratios`", "has no figure 'ratios'"),
        ("`rss_mb`", "`empty`", "has no numeric value (None)"),
        ("x.json` | `gap`", "y.json` | `gap`", "'benchmarks/results/y.json' is not a file"),
    ],
)
def test_a_row_that_differs_from_its_file_is_named(results_root, old, new, error):
    assert TABLE.count(old) == 1
    rows = results_rows(TABLE.replace(old, new), "doc.md")
    errors = [e for r in rows for e in row_errors(r, results_root)]
    assert len(errors) == 1 and error in errors[0], errors


def test_tables_without_the_columns_are_not_results_tables():
    assert results_rows("| check | figure |\n|---|---|\n| a | 1 |\n", "doc.md") == []
