"""The import layering of DESIGN.md section 5, checked on the source tree.

Every module of ``seqflow`` may import its own layer or layers below it; no set of modules
imports itself in a circle, counting imports placed inside functions (they would only hide
one). Recipes and tools import the application packages (``seqflow.train``,
``seqflow.speech``, ``seqflow.forecasting``) through their public names only.
"""

from __future__ import annotations

import importlib.util
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


def _load_layout():
    spec = importlib.util.spec_from_file_location("layout", ROOT / "tools" / "layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layout = _load_layout()


def source_modules() -> dict[str, Path]:
    return layout.source_modules(PACKAGE)


def imported_modules(path: Path, modules: set[str]) -> list[tuple[int, str, list[str]]]:
    return layout.imported_modules(ROOT, path, modules)


def rank(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    assert top in RANKS or top == "__init__", f"{module}: no layer rank; add it to RANKS"
    return RANKS.get(top, 7)


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
    loops = layout.circles(layout.import_graph(PACKAGE))
    assert not loops, "import circles:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_circle_detection_and_depth_on_known_graphs():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert layout.circles(graph) == [["a", "b", "c"]]
    assert layout.circles({"a": {"b"}, "b": set()}) == []
    assert layout.depth(graph) == 2  # d -> (a b c)
    assert layout.depth({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == 3


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
