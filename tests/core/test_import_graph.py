"""The package's shape: no import cycle, stages that depend only on what they should, and no
torch for reading a config or a dry run (issue 11)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import qrdistill

SRC = Path(qrdistill.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the qrdistill modules it imports, anywhere in its body (function-level imports
    included: a cycle through them is still a knot for the reader). `from pkg import name`
    counts as importing `pkg.name` when that is a module."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([node.module] if node.module else [])
                    )
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "qrdistill.config" in graph and "qrdistill.methods" in graph["qrdistill.config"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_a_cycle_would_be_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_quality_depends_on_llm_and_records_not_on_teacher():
    graph = import_graph()
    quality = {
        dep for name, deps in graph.items() if name.startswith("qrdistill.quality") for dep in deps
    }
    assert not {dep for dep in quality if dep.startswith("qrdistill.teacher")}
    assert {"qrdistill.records"} <= quality and any(
        dep.startswith("qrdistill.llm") for dep in quality
    )


# Any attempt to import torch is recorded and refused: a library that would import torch if it
# could (and falls back when it cannot) counts as importing it.
NO_TORCH = """
import sys

attempts = []

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            attempts.append(name)
            raise ImportError("torch is blocked by the test")

sys.meta_path.insert(0, NoTorch())
import qrdistill.config
assert not attempts, f"import qrdistill.config imported torch: {attempts}"
from qrdistill.cli import main
code = main(["run", "--dry-run", "--run-dir", sys.argv[1]])
assert not attempts, f"qrdistill run --dry-run imported torch: {attempts}"
print("exit", code)
suite = ["--set", "suite={boolq: {}, arc_challenge: {data: {train_fraction: 0.5}}}"]
code = main(["run", "--dry-run", "--run-dir", sys.argv[1], *suite])
assert not attempts, f"qrdistill run --dry-run on a suite imported torch: {attempts}"
print("suite exit", code)
"""


def test_config_and_dry_run_do_not_import_torch(tmp_path):
    src = str(SRC.parent)
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": src,
            "HOME": str(Path.home()),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exit 0" in result.stdout  # the quickstart's models and data are all there
    assert "suite exit 0" in result.stdout and "total (2 of 2 tasks)" in result.stdout
    assert not (tmp_path / "run").exists()  # a dry run writes nothing
