"""rmkit's import graph, imports inside functions included: no import circle, and no package importing one of
a higher layer (data < models < score, decontam < curate, evaluate < train < serve, integrations < cli, demo).

    .venv/bin/python -m pytest tests/unit/test_import_graph.py -q
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "rmkit"
LAYER = {"data": 0, "yaml_config": 0, "models": 1, "score": 2, "decontam": 2, "curate": 3, "evaluate": 3,
         "train": 4, "serve": 5, "integrations": 5, "cli": 6, "demo": 6, "__init__": 6}


def modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        name = ".".join(("rmkit", *f.relative_to(SRC).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = f
    return out


def imported(node: ast.AST, package: str, known: dict) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    else:
        return []
    out = []
    for name in names:
        while name and name not in known:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        if name:
            out.append(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for m, f in known.items():
        package = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            for target in imported(node, package, known):
                parent_init = m.startswith(target + ".") and known[target].name == "__init__.py"
                if target != m and not parent_init:
                    edges[m].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative over a small graph)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYER.get(parts[1] if len(parts) > 1 else "__init__", 9)


def test_no_import_circle():
    assert circles(graph()) == []


def test_no_package_imports_a_higher_layer():
    edges = graph()
    assert [(a, b) for a, bs in edges.items() for b in sorted(bs) if layer(b) > layer(a)] == []
    assert all(layer(m) < 9 for m in edges), [m for m in edges if layer(m) == 9]  # every package has a layer


def test_the_checks_see_a_circle_and_an_upward_arrow():
    edges = {"rmkit.score.a": {"rmkit.score.b"}, "rmkit.score.b": {"rmkit.score.a", "rmkit.train.c"},
             "rmkit.train.c": set()}
    assert circles(edges) == [["rmkit.score.a", "rmkit.score.b"]]
    assert layer("rmkit.train.c") > layer("rmkit.score.b")
    found = graph()
    assert "rmkit.score.base" in found["rmkit.score.scorer"]  # imports at module level are seen
    assert "rmkit.integrations.client" in found["rmkit.integrations.sources"]  # and inside functions
