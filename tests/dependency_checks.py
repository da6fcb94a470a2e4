"""The installed dependency set against the declared one and the lock (constraints.txt).

Shared by ``conftest.py`` (a torch/torchaudio pair that does not load stops the session with
one line before hundreds of collection errors) and ``test_dependencies.py``.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REFRESH = "make lock"
INSTALL = "pip install -c constraints.txt -e '.[dev,speech]'"


def lock_path() -> Path:
    """The lock to check against: ``$SEQFLOW_CONSTRAINTS`` (``make lock`` tests its candidate
    this way) or ``constraints.txt`` at the repository root."""
    return Path(os.environ.get("SEQFLOW_CONSTRAINTS", ROOT / "constraints.txt"))


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical distribution name: version}`` of every ``name==version`` line of a lock.

    Comments and blank lines are skipped; any other line is a one-line ``ValueError``.
    """
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or requirement.marker or "*" in text:
            raise ValueError(f"{path}:{number}: not an exact pin 'name==version': {line!r}")
        pins[canonicalize_name(requirement.name)] = specs[0].version
    return pins


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (from its metadata), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def torchaudio_problem() -> str | None:
    """None when torchaudio's compiled library loads against the installed torch and runs;
    otherwise one line naming both versions, what failed and how to install the tested pair.

    Checks: ``import torchaudio`` (it loads ``libtorchaudio``), the extension flag (without it
    torchaudio silently falls back to Python loops), and ``lfilter`` through the compiled
    loop on a first-order recursion whose impulse response is ``0.5 ** n``.
    """
    versions = (f"torchaudio {installed_version('torchaudio')} against torch "
                f"{installed_version('torch')}")
    advice = f"install the tested pair: {INSTALL}"
    try:
        import torch
        import torchaudio.functional
        from torchaudio import _extension
    except Exception as err:  # OSError from the loader, ImportError, undefined symbols
        return f"{versions}: torchaudio does not load ({type(err).__name__}: {err}); {advice}"
    if not getattr(_extension, "_IS_TORCHAUDIO_EXT_AVAILABLE", False):
        return f"{versions}: torchaudio's compiled extension is not available; {advice}"
    impulse = torch.zeros(1, 8, dtype=torch.float64)
    impulse[0, 0] = 1.0
    try:  # y[n] = x[n] + 0.5 y[n - 1]
        out = torchaudio.functional.lfilter(
            impulse, torch.tensor([1.0, -0.5], dtype=torch.float64),
            torch.tensor([1.0, 0.0], dtype=torch.float64), clamp=False)
    except Exception as err:
        return f"{versions}: torchaudio's compiled lfilter fails ({type(err).__name__}: {err})"
    expected = 0.5 ** torch.arange(8, dtype=torch.float64)
    if not torch.allclose(out[0], expected, rtol=1e-12, atol=1e-12):
        return f"{versions}: torchaudio's compiled lfilter gives {out[0].tolist()}, " \
               f"expected 0.5**n; {advice}"
    return None
