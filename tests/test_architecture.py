"""The import graph of the package: no circle, and no arrow running back up the pipeline.

Every ``import`` statement of every module is read from source (at any depth, including imports
inside functions and under ``if TYPE_CHECKING``), so the graph is the one a drawing tool sees.
Each module has a layer; a module may import its own layer and the layers below it:

0. base: manifest, schemas, stats, metrics, results, io, transforms, hashing, atomic, weights
1. the pipeline's tools: splits, phantom, encoders, embed
2. preprocessing (harmonisers read media, schemas and split specs)
3. protocols (task types, runners, scorers, the evaluator, export)
4. the catalogue (binds harmonisers, phantom layouts, split specs and task types)
5. suites and the report (read the catalogue and results)
6. the job (plan → embed → score → write)
7. the command line
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: installed package → source folder (the package-dir mapping of pyproject.toml)
FOLDERS = {"cardiobench": "cardiobench", "cardiobench.preprocessing": "preprocessing",
           "cardiobench.protocols": "protocols", "cardiobench.splits": "splits",
           "cardiobench.suites": "suites"}
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (7, ("cardiobench.cli", "cardiobench.cli_options")),
    (6, ("cardiobench.job",)),
    (5, ("cardiobench.suite", "cardiobench.report", "cardiobench.suites")),
    (4, ("cardiobench.catalogue",)),
    (3, ("cardiobench.protocols",)),
    (2, ("cardiobench.preprocessing",)),
    (1, ("cardiobench.splits", "cardiobench.phantom", "cardiobench.encoders",
         "cardiobench.embed")),
    (0, ("cardiobench",)),
]


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            # a subfolder of cardiobench/ mapped elsewhere is not part of this package
            if not any(name.startswith(other + ".") or name == other for other in FOLDERS
                       if other != pkg and other.startswith(pkg + ".")):
                out[name] = path
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_pkg]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("cardiobench"):
                    graph[name].add(t)
    return graph


def _layer(module: str) -> int:
    return next(rank for rank, prefixes in LAYERS
                if any(module == p or module.startswith(p + ".") for p in prefixes))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_covers_the_package() -> None:
    graph = _graph()
    assert {"cardiobench.catalogue", "cardiobench.job", "cardiobench.cli",
            "cardiobench.protocols.task_types.binary", "cardiobench.preprocessing.camus",
            "cardiobench.phantom.layouts.camus"} <= set(graph)
    # the catalogue binds harmonisers, layouts and task types: the arrows exist, downwards
    assert "cardiobench.preprocessing.camus" in graph["cardiobench.catalogue.builtin"]
    assert "cardiobench.phantom.layouts.camus" in graph["cardiobench.catalogue.builtin"]


def test_no_circle_in_the_import_graph() -> None:
    assert _cycles(_graph()) == []


def test_no_arrow_runs_back_up() -> None:
    graph = _graph()
    upward = sorted(f"{a} ({_layer(a)}) -> {b} ({_layer(b)})" for a, targets in graph.items()
                    for b in targets if _layer(b) > _layer(a))
    assert upward == []


def test_nothing_the_catalogue_binds_imports_it_back() -> None:
    graph = _graph()
    bound = [m for m in graph if m.startswith(("cardiobench.preprocessing",
                                               "cardiobench.phantom", "cardiobench.splits",
                                               "cardiobench.protocols"))]
    assert [m for m in bound if any(t.startswith("cardiobench.catalogue") for t in graph[m])] == []
    # the phantom never imports a harmoniser: a generator sharing the reader's code cannot test it
    assert [m for m in graph if m.startswith("cardiobench.phantom")
            and any(t.startswith("cardiobench.preprocessing") for t in graph[m])] == []
