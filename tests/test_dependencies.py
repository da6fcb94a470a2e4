"""The installed set is the declared and tested one (issue 19).

* every runtime dependency of ``pyproject.toml`` imports;
* torchaudio's compiled library loads against the installed torch and runs (a broken pair is
  one line naming both versions);
* torch and torchaudio are the versions pinned in the lock (``constraints.txt``);
* every third-party module imported in ``seqflow/``, ``recipes/``, ``tools/`` and ``tests/``
  is declared where that code's users get it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import sys
from pathlib import Path

import pytest
from dependency_checks import (
    INSTALL,
    REFRESH,
    ROOT,
    installed_version,
    lock_path,
    read_pins,
    torchaudio_problem,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the dev extra installs tomli there
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])

# Imported only behind a guard (try/except ImportError, importorskip, find_spec) that names
# the package to install; deliberately not declared.
OPTIONAL = {
    "gluonts": "the DeepAR baseline of recipes/timeseries, skipped with a message without it",
    "h5py": "load_uci('bsds300') reads HDF5; ImportError with the pip command without it",
}


def requirements(group: str | None, markers: bool = True) -> list[Requirement]:
    """The requirements ``group`` installs: None for the runtime dependencies, else an extra
    (self-references such as ``seqflow[export]`` expanded; with ``markers``, only those whose
    environment marker holds here)."""
    project = PYPROJECT["project"]
    texts = project["dependencies"] if group is None else project["optional-dependencies"][group]
    found = []
    for text in texts:
        requirement = Requirement(text)
        if markers and requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if canonicalize_name(requirement.name) == PROJECT:
            for extra in sorted(requirement.extras):
                found += requirements(extra, markers)
        else:
            found.append(requirement)
    return found


def declared(group: str | None, markers: bool = True) -> set[str]:
    """Canonical names of the distributions of :func:`requirements`."""
    return {canonicalize_name(r.name) for r in requirements(group, markers)}


def modules_of() -> dict[str, set[str]]:
    """``{canonical distribution name: its top-level modules}`` of everything installed."""
    found: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            found.setdefault(canonicalize_name(dist), set()).add(module)
    return found


def import_name(dist: str, modules: set[str]) -> str:
    """The module a distribution is imported as: the one spelled like it (``G722``,
    ``soundfile``, ``torch``), else its only public top-level module (``yaml``, ``sklearn``)."""
    spelled = [m for m in modules if canonicalize_name(m) == dist]
    public = sorted(m for m in modules if not m.startswith("_"))
    if spelled:
        return spelled[0]
    if len(public) == 1:
        return public[0]
    raise AssertionError(f"{dist}: cannot tell its module among {public}")


def test_every_declared_runtime_dependency_imports():
    installed = modules_of()
    failures = []
    for dist in sorted(declared(None)):
        if dist not in installed:
            failures.append(f"{dist} is not installed")
            continue
        module = import_name(dist, installed[dist])
        try:
            importlib.import_module(module)
        except Exception as err:
            failures.append(f"{dist} (import {module}): {type(err).__name__}: {err}")
    assert not failures, "; ".join(failures) + f"; install the tested set: {INSTALL}"


def test_torchaudio_loads_and_runs_against_the_installed_torch():
    problem = torchaudio_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def test_torch_and_torchaudio_are_the_locked_pair():
    path = lock_path()
    if not path.is_file():
        pytest.skip(f"{path} is absent: no lock to compare the installed versions with")
    pins = read_pins(path)
    for dist in ("torch", "torchaudio"):
        assert dist in pins, f"{path} pins no {dist} version; refresh it with {REFRESH}"
        version = installed_version(dist)
        # '==2.11.0' admits a local build label such as 2.11.0+cpu, as pip's does.
        if version is None or version not in SpecifierSet(f"=={pins[dist]}"):
            pytest.fail(f"installed torch {installed_version('torch')} / torchaudio "
                        f"{installed_version('torchaudio')}, {path.name} pins torch "
                        f"{pins.get('torch')} / torchaudio {pins.get('torchaudio')}: "
                        f"{INSTALL} (or {REFRESH} to test and pin a new pair)", pytrace=False)


def test_the_lock_pins_every_declared_dependency_of_the_make_install():
    """``make`` installs ``.[dev,speech]`` under the lock: each of them must be pinned there,
    inside pyproject's range, so a fresh machine gets the tested version."""
    path = lock_path()
    if not path.is_file():
        pytest.skip(f"{path} is absent: no lock to compare pyproject.toml with")
    pins = read_pins(path)
    problems = []
    for requirement in [*requirements(None), *requirements("dev"), *requirements("speech")]:
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{path.name} pins no version of {name}")
        elif pins[name] not in requirement.specifier:
            problems.append(f"{path.name} pins {name}=={pins[name]}, outside pyproject's "
                            f"{requirement}")
    assert not problems, "; ".join(problems) + f"; refresh the lock with {REFRESH}"


# --- every third-party import is declared ------------------------------------------------

GUARDS = ("ImportError", "ModuleNotFoundError")
BY_NAME = {"importorskip", "find_spec", "import_module"}  # calls taking a module name


def local_modules() -> set[str]:
    """Names that resolve inside the repository: the package, the tests, and every script or
    folder a recipe, a tool or a test puts on ``sys.path`` (``baselines``, ``sequence_helpers``)."""
    names = {"seqflow", "tests"}
    for top in ("recipes", "tools", "tests"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix == ".py" or path.is_dir():
                names.add(path.stem if path.suffix == ".py" else path.name)
    return names


def imports(path: Path) -> list[tuple[int, str, bool, bool]]:
    """``(line, top-level module, guarded, module level)`` of every absolute import in
    ``path``, and of module names passed to ``importorskip``/``find_spec``/``import_module``.

    Guarded: inside a ``try`` that catches ImportError, or imported by name through one of
    those calls (they report a missing module instead of raising at import time).
    """
    found = []

    def visit(node: ast.AST, guarded: bool, top: bool) -> None:
        if isinstance(node, ast.Try):
            catches = any(
                handler.type is None or any(
                    isinstance(n, ast.Name) and n.id in GUARDS for n in ast.walk(handler.type))
                for handler in node.handlers)
            for child in node.body:
                visit(child, guarded or catches, top)
            for child in (*node.handlers, *node.orelse, *node.finalbody):
                visit(child, guarded, top)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name.split(".")[0], guarded, top))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0], guarded, top))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            first = node.args[0] if node.args else None
            if name in BY_NAME and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                found.append((node.lineno, first.value.split(".")[0], True, False))
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded, inner)

    visit(ast.parse(path.read_text(), str(path)), False, True)
    return found


def allowed(folder: str, guarded: bool, top: bool) -> tuple[set[str], str]:
    """The distributions an import in ``folder`` may come from, and where to declare it
    (markers ignored: ``tomli`` is declared for Python < 3.11 and imported only there).

    Behind a guard: any group (the guard names what to install). ``seqflow/`` at module level:
    the runtime dependencies (what ``pip install seqflow`` gives); inside a function also the
    extras other than ``dev``. Recipes and tools run from a checkout after ``make``: runtime,
    ``speech`` and ``export``. Tests: runtime and ``dev`` (which includes ``export``).
    """
    extras = PYPROJECT["project"]["optional-dependencies"]
    runtime = declared(None, markers=False)
    if guarded:
        return runtime.union(*(declared(e, False) for e in extras)), "any group"
    if folder == "seqflow":
        if top:
            return runtime, "[project] dependencies"
        return runtime.union(*(declared(e, False) for e in extras if e != "dev")), \
            "[project] dependencies or an extra other than dev"
    if folder in ("recipes", "tools"):
        return runtime | declared("speech", False) | declared("export", False), \
            "[project] dependencies or the speech/export extras"
    return runtime | declared("dev", False), "[project] dependencies or the dev extra"


def test_every_third_party_import_is_declared_in_the_right_group():
    stdlib = set(sys.stdlib_module_names)
    local = local_modules()
    owners = importlib.metadata.packages_distributions()
    problems = []
    for folder in ("seqflow", "recipes", "tools", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT)
            for line, module, guarded, top in imports(path):
                if module in stdlib or module in local or module == "__future__":
                    continue
                if module in OPTIONAL:
                    if not guarded:
                        problems.append(f"{where}:{line}: optional {module} imported unguarded")
                    continue
                # A module not installed here counts under its own name (tomli on 3.11).
                dists = {canonicalize_name(d) for d in owners.get(module, [module])}
                names, group = allowed(folder, guarded, top)
                if not dists & names:
                    problems.append(f"{where}:{line}: {module} ({', '.join(sorted(dists))}) is "
                                    f"not declared in {group}")
    assert not problems, "\n".join(problems)


def test_the_import_scan_sees_guards_functions_and_names(tmp_path):
    """The scanner itself: a module-level import, one inside a function, one behind
    ``except ImportError``, one behind another exception, and one by name."""
    source = tmp_path / "probe.py"
    source.write_text(
        "import numpy.linalg\n"
        "def f():\n    import yaml\n"
        "try:\n    import h5py\nexcept ImportError:\n    h5py = None\n"
        "try:\n    import tqdm\nexcept ValueError:\n    pass\n"
        "pytest.importorskip('scipy.stats')\n")
    assert imports(source) == [(1, "numpy", False, True), (3, "yaml", False, False),
                               (5, "h5py", True, True), (9, "tqdm", False, True),
                               (12, "scipy", True, False)]
