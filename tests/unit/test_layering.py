"""Layering of ``stream_wfm``: which folders may import which.

Every module under ``stream_wfm/`` is parsed with :mod:`ast`; every import counts,
wherever it stands (module level, inside a function, under ``TYPE_CHECKING``). A
*folder* is a top-level subpackage (``delivery``, ``pipeline``...); a top-level module
(``events.py``, ``service.py``...) is a folder of its own, and ``stream_wfm/__init__.py``
is ``__init__``.

* No cycle between folders: dependencies point one way (e.g. ``delivery`` →
  ``integrations``, never back).
* What ``stream_wfm.service`` needs, transitively, imports nothing from the demo, the
  bench or the CLI: the service runs without them.
* Nothing in ``stream_wfm`` imports ``tests``.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import stream_wfm

PACKAGE = "stream_wfm"
ROOT = Path(stream_wfm.__file__).resolve().parent
SERVICE = "stream_wfm.service"
#: Folders the service must run without.
NOT_FOR_THE_SERVICE = ("bench", "cli", "demo")


@dataclass(frozen=True, slots=True)
class Import:
    """``importer`` imports ``imported`` at line ``line`` of ``path``."""

    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name a ``from ... import`` refers to."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    if node.level > 1:
        parts = parts[: -(node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _named(modules: dict[str, Path], name: str) -> str:
    """``name`` itself when it is one of ``modules``, else its longest prefix that is
    (``stream_wfm.events.Event`` → ``stream_wfm.events``); outside imports stay as they are."""
    candidate = name
    while candidate and candidate not in modules:
        candidate = candidate.rpartition(".")[0]
    return candidate or name


def imports_of(modules: dict[str, Path], module: str) -> Iterator[Import]:
    """Every import in ``module``'s source, at any depth, resolved to module names."""
    path = modules[module]
    package = module.partition(".")[0]
    shown = path.relative_to(modules[package].parent.parent)  # pkg/sub/mod.py
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, _named(modules, alias.name), shown, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                # ``from pkg import submodule`` imports the submodule.
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else _named(modules, base)
                yield Import(module, target, shown, node.lineno)


def all_imports(modules: dict[str, Path]) -> list[Import]:
    """Every import of every module, once per module, target and line."""
    found = (found for module in modules for found in imports_of(modules, module))
    return list(dict.fromkeys(found))


def folder_of(module: str, package: str = PACKAGE) -> str | None:
    """The folder of a module of ``package``; None for a module outside it."""
    if module == package:
        return "__init__"
    if not module.startswith(package + "."):
        return None
    return module.split(".")[1]


def folder_edges(
    imports: Iterable[Import], package: str = PACKAGE
) -> dict[tuple[str, str], list[Import]]:
    """(folder, folder it imports) → the imports that make the edge."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for found in imports:
        source, target = folder_of(found.importer, package), folder_of(found.imported, package)
        if source is not None and target is not None and source != target:
            edges.setdefault((source, target), []).append(found)
    return edges


def strongly_connected(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_path(start: str, goals: set[str], step: dict[str, list[str]]) -> list[str] | None:
    """The shortest path from ``start`` to one of ``goals`` (at least one step), or None."""
    previous: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for nxt in sorted(step.get(node, ())):
            if nxt in goals:
                path = [nxt, node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1]
            if nxt not in seen:
                seen.add(nxt)
                previous[nxt] = node
                queue.append(nxt)
    return None


def _witnesses(found: list[Import], most: int = 3) -> str:
    shown = "; ".join(str(item) for item in found[:most])
    return shown + (f" (+{len(found) - most} more)" if len(found) > most else "")


def describe_cycles(edges: dict[tuple[str, str], list[Import]]) -> list[str]:
    """One paragraph per group of folders that import each other: the shortest cycle
    through each of them, then the imports that make the edges of those cycles."""
    lines = []
    for component in strongly_connected(edges):
        members = set(component)
        step: dict[str, list[str]] = {}
        for source, target in edges:
            if source in members and target in members:
                step.setdefault(source, []).append(target)
        cycles: list[list[str]] = []
        for member in component:
            cycle = shortest_path(member, {member}, step)
            assert cycle is not None  # every member of a component is on a cycle
            first = cycle.index(min(cycle[:-1]))  # one rotation of each cycle
            cycle = [*cycle[first:-1], *cycle[:first], cycle[first]]
            if cycle not in cycles:
                cycles.append(cycle)
        lines.append(f"folders {', '.join(component)} import each other:")
        lines.extend(f"  cycle {' → '.join(cycle)}" for cycle in cycles)
        on_cycles = {pair for cycle in cycles for pair in itertools.pairwise(cycle)}
        for source, target in sorted(on_cycles):
            lines.append(f"    {source} → {target}: {_witnesses(edges[source, target])}")
    return lines


# --- the rules ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return module_files(ROOT, PACKAGE)


@pytest.fixture(scope="module")
def imports(modules: dict[str, Path]) -> list[Import]:
    return all_imports(modules)


def test_no_cycle_between_folders(imports: list[Import]) -> None:
    cycles = describe_cycles(folder_edges(imports))
    assert not cycles, "\n".join(cycles)


def test_the_service_needs_nothing_from_the_demo_the_bench_or_the_cli(
    modules: dict[str, Path], imports: list[Import]
) -> None:
    step: dict[str, list[str]] = {}
    how: dict[tuple[str, str], Import] = {}
    for found in imports:
        if found.imported in modules:
            step.setdefault(found.importer, []).append(found.imported)
            how.setdefault((found.importer, found.imported), found)
    # Importing a.b.c runs the packages a and a.b first.
    for module in modules:
        parent = module.rpartition(".")[0]
        if parent:
            step.setdefault(module, []).append(parent)
    forbidden = {m for m in modules if folder_of(m) in NOT_FOR_THE_SERVICE}
    path = shortest_path(SERVICE, forbidden, step)
    if path is not None:
        chain = [
            str(how[pair]) if pair in how else f"{pair[0]} is inside package {pair[1]}"
            for pair in itertools.pairwise(path)
        ]
        pytest.fail(
            f"{SERVICE} needs {path[-1]} (folders {', '.join(NOT_FOR_THE_SERVICE)} are not "
            "for the service):\n  " + "\n  ".join(chain)
        )


def test_nothing_in_the_package_imports_the_tests(imports: list[Import]) -> None:
    found = [str(i) for i in imports if i.imported == "tests" or i.imported.startswith("tests.")]
    assert not found, "stream_wfm imports the tests:\n" + "\n".join(found)


# --- the graph builder itself ------------------------------------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return module_files(root, "pkg")


def test_imports_are_found_at_any_depth_and_resolved(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "top.py": "import pkg.a.x\n",
            "a/__init__.py": "from . import x\n",
            "a/x.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.b import y\n"
                "def f():\n    from ..b.y import Thing\n    import tests.helpers\n"
            ),
            "b/__init__.py": "",
            "b/y.py": "from pkg import top\nfrom pkg.a import x as _x, missing\n",
        },
    )
    found = {(i.importer, i.imported, i.line) for i in all_imports(modules)}
    assert found == {
        ("pkg.top", "pkg.a.x", 1),
        ("pkg.a", "pkg.a.x", 1),
        ("pkg.a.x", "typing", 1),
        ("pkg.a.x", "pkg.b.y", 3),
        ("pkg.a.x", "pkg.b.y", 5),
        ("pkg.a.x", "tests.helpers", 6),
        ("pkg.b.y", "pkg.top", 1),
        ("pkg.b.y", "pkg.a.x", 2),
        ("pkg.b.y", "pkg.a", 2),
    }
    edges = folder_edges(all_imports(modules), "pkg")
    assert set(edges) == {("top", "a"), ("a", "b"), ("b", "top"), ("b", "a")}
    assert describe_cycles(edges) == [
        "folders a, b, top import each other:",
        "  cycle a → b → a",
        "  cycle a → b → top → a",
        "    a → b: pkg/a/x.py:3 imports pkg.b.y; pkg/a/x.py:5 imports pkg.b.y",
        "    b → a: pkg/b/y.py:2 imports pkg.a.x; pkg/b/y.py:2 imports pkg.a",
        "    b → top: pkg/b/y.py:1 imports pkg.top",
        "    top → a: pkg/top.py:1 imports pkg.a.x",
    ]


def test_strongly_connected_components() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "a")]
    assert strongly_connected(edges) == [["a", "b", "c"], ["d", "e"]]
    assert strongly_connected([("a", "b"), ("b", "c")]) == []
