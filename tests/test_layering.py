"""The import layering of DESIGN.md section 5, checked on the source tree.

Every module of ``seqflow`` may import its own layer or layers below it; no set of modules
imports itself in a circle, counting imports placed inside functions (they would only hide
one). Recipes and tools import the application packages (``seqflow.train``,
``seqflow.speech``, ``seqflow.forecasting``) through their public names only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seqflow"

# Higher layers may import lower ones, never the reverse; equal ranks may import each other
# (circles aside). speech and forecasting are applications of a finished run: both sit above
# the engine, and neither imports the other.
RANKS = {
    "checks": 0,
    "nn": 1, "data": 1, "metrics": 1,
    "transforms": 2,
    "distributions": 3,
    "train": 4,
    "speech": 5, "forecasting": 5,
    "cli": 6, "__main__": 6,
}
APPLICATIONS = ("train", "speech", "forecasting")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> list[tuple[int, str, list[str]]]:
    """``(line, module, imported names)`` of every import of a seqflow module in ``path``."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([stem] if stem else []))
            names = [alias.name for alias in node.names]
            targets = [(f"{stem}.{n}" if f"{stem}.{n}" in modules else stem, names)
                       for n in names]
        else:
            continue
        for target, names in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                found.append((node.lineno, target, names))
    return found


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def rank(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    assert top in RANKS or top == "__init__", f"{module}: no layer rank; add it to RANKS"
    return RANKS.get(top, 7)


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for _, target, _ in imported_modules(path, set(modules)):
            # a package __init__ handing on its own modules' names is not a circle of design
            if target != name and not (path.name == "__init__.py"
                                       and target.startswith(name + ".")):
                graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_runs_back_up_the_layers():
    modules = source_modules()
    bad = []
    for name, path in modules.items():
        if name == "seqflow":
            continue  # the top-level package re-exports the public names of every layer
        here = rank(name)
        for line, target, _ in imported_modules(path, set(modules)):
            if target == "seqflow":
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports the top-level package")
                continue
            there = rank(target)
            top, their_top = name.split(".")[1], target.split(".")[1]
            if there > here or (here == there == 5 and top != their_top):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name} imports {target}")
    assert not bad, "imports that run back up the layers:\n" + "\n".join(bad)


def test_no_import_circles():
    loops = strongly_connected(import_graph())
    assert not loops, "import circles:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_circle_detection_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("folder", ["recipes", "tools"])
def test_recipes_and_tools_use_public_names(folder):
    modules = set(source_modules())
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, target, names in imported_modules(path, modules):
            where = f"{path.relative_to(ROOT)}:{line}"
            private = [n for n in names if n.startswith("_")]
            if private:
                bad.append(f"{where}: imports private {', '.join(private)} from {target}")
            parts = target.split(".")
            if len(parts) > 2 and parts[1] in APPLICATIONS:
                bad.append(f"{where}: imports the module {target}; import from "
                           f"seqflow.{parts[1]} (its __all__)")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", APPLICATIONS)
def test_application_packages_export_what_they_import(package):
    module = __import__(f"seqflow.{package}", fromlist=["__all__"])
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert module.__all__ and not missing
