"""The package's shape: lines, modules per package, the import graph's depth and its circles.

    python tools/layout.py [PACKAGE_DIR ...]     (default: seqflow)

Prints one table row per package directory given (e.g. today's tree beside an older checkout
unpacked with ``git archive REF seqflow | tar -x -C /tmp/old``). The import graph has an edge
``a -> b`` for every import of module ``b`` anywhere in ``a`` (imports inside functions count);
a package ``__init__`` handing on its own modules' names adds none. Depth is the longest chain
of imports, counted in modules, with each circle collapsed to one node. ``tests/test_layering.py``
checks the layering with the same graph.
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    """``seqflow/train/engine.py`` -> ``seqflow.train.engine`` (``root`` holds ``seqflow/``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules(package: Path) -> dict[str, Path]:
    """Every module of the package directory ``package``, by dotted name."""
    return {module_name(package.parent, p): p for p in sorted(package.rglob("*.py"))}


def imported_modules(root: Path, path: Path, modules: set[str]
                     ) -> list[tuple[int, str, list[str]]]:
    """``(line, module, imported names)`` for every import in ``path`` of one of ``modules``
    (relative imports resolved; ``from package import module`` names the module)."""
    me = module_name(root, path) if path.is_relative_to(root) else ""
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


def import_graph(package: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within the package."""
    modules = source_modules(package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for _, target, _ in imported_modules(package.parent, path, set(modules)):
            if target != name and not (path.name == "__init__.py"
                                       and target.startswith(name + ".")):
                graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` (Tarjan's algorithm, iterative), each
    sorted; components of one node included."""
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
                out.append(sorted(component))
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: components of more than one module."""
    return [c for c in strongly_connected(graph) if len(c) > 1]


def depth(graph: dict[str, set[str]]) -> int:
    """The longest import chain in modules, each circle counted as one node."""
    component_of = {m: i for i, c in enumerate(strongly_connected(graph)) for m in c}
    edges: dict[int, set[int]] = {i: set() for i in set(component_of.values())}
    for a, targets in graph.items():
        edges[component_of[a]].update(component_of[b] for b in targets
                                      if component_of[b] != component_of[a])
    memo: dict[int, int] = {}
    # Tarjan emits components in reverse topological order: callees before callers.
    for node in sorted(edges):
        memo[node] = 1 + max((memo[child] for child in edges[node]), default=0)
    return max(memo.values(), default=0)


def shape(package: Path) -> dict:
    """Lines, modules per package, import depth and circles of one package directory."""
    modules = source_modules(package)
    graph = import_graph(package)
    per_package = Counter(name.split(".")[1] if name.count(".") >= 1 and
                          (package / name.split(".")[1]).is_dir() else "(top level)"
                          for name in modules)
    return {"lines": sum(len(p.read_text().splitlines()) for p in modules.values()),
            "modules": len(modules), "per_package": dict(sorted(per_package.items())),
            "depth": depth(graph), "circles": circles(graph)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", type=Path, default=[Path("seqflow")])
    args = parser.parse_args()
    for package in args.packages:
        s = shape(package.resolve())
        per = ", ".join(f"{k} {v}" for k, v in s["per_package"].items())
        print(f"{package}: {s['lines']} lines in {s['modules']} modules ({per}); import depth "
              f"{s['depth']}; {len(s['circles'])} circle(s)"
              + "".join(f"\n  circle: {' <-> '.join(c)}" for c in s["circles"]))


if __name__ == "__main__":
    main()
