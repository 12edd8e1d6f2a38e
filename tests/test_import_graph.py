"""The shape of the house, drawn from the imports (issue 14): no import circles in app/sendergate (type-only
imports count too: a circle through them is the same knot for a reader), the policy imports nothing of the
project, and the desktop app reaches the gateway only through its API client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # in process: no daemon, no subprocess

APP = Path(__file__).resolve().parents[1] / "app"


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (relative imports resolved; `from x import y` counts
    y when y is a module)."""
    modules = {}
    for path in (APP / "sendergate").rglob("*.py"):
        parts = path.relative_to(APP).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {c for c in candidates if c in modules and c != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_policy_imports_nothing_of_the_project() -> None:
    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith("sendergate.policy"):
            assert {i for i in imports if not i.startswith("sendergate.policy")} == set(), module


def test_the_desktop_app_talks_to_the_gateway_only_through_its_api_client() -> None:
    graph = import_graph()
    # the pure parts it shares: contacts importers and the address rules (the same normalisation as the gateway)
    allowed = ("sendergate.desktop", "sendergate.contacts", "sendergate.resources", "sendergate.policy.address")
    for module, imports in graph.items():
        if module.startswith("sendergate.desktop"):
            outside = {i for i in imports if not i.startswith(allowed) and i != "sendergate"}
            assert outside == set(), (module, outside)


# -- the drawing: resources/docs/imports.md, the same graph by part (folder or module beside them) --

DRAWING = APP.parent / "resources" / "docs" / "imports.md"


def part_graph() -> dict[str, set[str]]:
    """The import graph by part: `sendergate.smtp.handler` is `smtp`, `sendergate.runtime` is `runtime`."""
    def part(module: str) -> str:
        return module.split(".")[1] if "." in module else ""

    graph: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        if part(module) in ("", "__main__"):
            continue
        graph.setdefault(part(module), set()).update(part(i) for i in imports if part(i) not in ("", part(module)))
    return graph


def drawing() -> str:
    graph = part_graph()
    edges = "\n".join(f"    {a} --> {b}" for a in sorted(graph) for b in sorted(graph[a]))
    return ("# Who imports whom\n\n"
            "The parts of `app/sendergate/` (a folder, or a module beside the folders) and their imports, drawn\n"
            "from the source by `tests/test_import_graph.py` (regenerate with\n"
            "`.venv/bin/python tests/test_import_graph.py > resources/docs/imports.md`). There are no circles,\n"
            "between parts or between modules; `policy` imports nothing of the project.\n\n"
            f"```mermaid\nflowchart LR\n{edges}\n```\n")


def test_no_circles_between_parts_either() -> None:
    assert cycles(part_graph()) == []


def test_the_drawing_of_the_imports_is_current() -> None:
    regenerate = ".venv/bin/python tests/test_import_graph.py > resources/docs/imports.md"
    assert DRAWING.read_text(encoding="utf-8") == drawing(), f"resources/docs/imports.md is out of date: {regenerate}"


if __name__ == "__main__":
    print(drawing(), end="")
