"""Named-error validators shared by every layer of seqflow.

Each check raises a one-line ``ValueError`` that names the caller, what was expected and what
was received. Shape checks read only Python-side metadata, so they cost nothing under
``torch.compile``; :func:`describe_nonfinite` reads values and is the one place that locates
NaN/Inf entries for every message in the package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor


def check_input(x: Tensor, features: int, name: str, allow_sequence: bool = False) -> None:
    """Raise when ``x`` is not ``(batch, features)`` (or ``(batch, features, time)``)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    ranks = (2, 3) if allow_sequence else (2,)
    expected = "(batch, features)" + (" or (batch, channels, time)" if allow_sequence else "")
    if x.dim() not in ranks:
        raise ValueError(
            f"{name}: expected a tensor of shape {expected} with features={features}, "
            f"got shape {tuple(x.shape)} (rank {x.dim()})"
        )
    if x.shape[1] != features:
        raise ValueError(
            f"{name}: expected {features} features on axis 1 (shape {expected}), "
            f"got shape {tuple(x.shape)} with {x.shape[1]} on axis 1"
        )
    check_floating(x, name)


def check_floating(x: Tensor, name: str) -> None:
    """Raise for integer, boolean or reduced-precision inputs that would be silently cast."""
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"{name}: expected a float32 or float64 tensor, got {x.dtype}; convert with "
            ".float() (bfloat16/float16 inputs lose the precision a log-density needs)"
        )


def check_context(context: Tensor | None, context_features: int | None, batch: int,
                  name: str) -> None:
    """Validate an optional vector context ``(batch, context_features[, time])``."""
    if context_features is None:
        if context is not None:
            raise ValueError(
                f"{name}: got a context of shape {tuple(context.shape)} but this transform was "
                "built without context_features"
            )
        return
    if context is None:
        raise ValueError(
            f"{name}: built with context_features={context_features} but called without context"
        )
    if not isinstance(context, Tensor):
        raise ValueError(f"{name}: expected a context tensor, got {type(context).__name__}")
    if context.dim() < 2 or context.shape[0] != batch or context.shape[1] != context_features:
        raise ValueError(
            f"{name}: expected context of shape (batch={batch}, {context_features}[, time]), "
            f"got {tuple(context.shape)}"
        )


def check_positive(name: str, **values: int | float | None) -> None:
    """Raise naming the first argument that is not > 0 (None means 'not used' and passes).

    >>> check_positive("WaveNet", blocks=2, kernel_size=0)
    Traceback (most recent call last):
    ...
    ValueError: WaveNet: kernel_size must be > 0, got 0
    """
    for key, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name}: {key} must be > 0, got {value}")


def describe_nonfinite(x: Tensor, rows: Sequence[int] | Tensor | None = None) -> str | None:
    """A message locating NaN/Inf entries of ``x`` ``(batch, ...)``, or None when all are finite.

    ``rows`` maps batch positions to names the user knows (e.g. the source file's data rows);
    without it, batch positions are reported.

    >>> import torch
    >>> message = describe_nonfinite(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), rows=[7, 8])
    >>> for part in message.split("; "):
    ...     print(part)
    1 non-finite value(s) (1 NaN, 0 Inf) in a tensor of shape (2, 2)
    first at index (0, 1)
    rows affected: 7

    Returns None while ``torch.export`` traces (e.g. for ONNX export): an exported graph cannot
    branch on tensor values, so the exported program carries no such check.
    """
    if torch.compiler.is_exporting():
        return None
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if count == 0:
        return None
    nans = int(torch.isnan(x).sum())
    where = bad.nonzero()
    first = tuple(int(i) for i in where[0])
    positions = torch.unique(where[:, 0]).tolist()
    if rows is not None:
        named = rows.tolist() if isinstance(rows, Tensor) else list(rows)
        positions = [named[p] for p in positions]
    shown = ", ".join(str(r) for r in positions[:10]) + (" ..." if len(positions) > 10 else "")
    label = "rows" if rows is not None else "batch rows"
    return (
        f"{count} non-finite value(s) ({nans} NaN, {count - nans} Inf) in a tensor of shape "
        f"{tuple(x.shape)}; first at index {first}; {label} affected: {shown}"
    )


def check_finite(x: Tensor, name: str, rows: Sequence[int] | Tensor | None = None) -> None:
    """Raise naming ``name`` and the affected rows when ``x`` holds NaN or Inf."""
    problem = describe_nonfinite(x, rows)
    if problem is not None:
        raise ValueError(f"{name}: {problem}")


def check_output_path(path: str | os.PathLike, what: str, suffixes: Sequence[str] = (),
                      folder: bool = False) -> Path:
    """Refuse, in one line naming ``path``, an output that could not be written.

    Run before any work, so that a long computation never ends in a failed write. ``path`` is a
    file (``folder=False``) whose suffix must be one of ``suffixes`` (any suffix when empty), or
    a folder. Missing folders above it may be created later: the nearest existing one must be a
    writable folder. Returns ``path`` as a :class:`~pathlib.Path`.

    >>> check_output_path("out/samples.txt", "--out", (".npy", ".csv"))
    Traceback (most recent call last):
    ...
    ValueError: --out out/samples.txt: expected a .npy or .csv file, got the suffix '.txt'
    """
    path = Path(path)
    if suffixes and path.suffix not in suffixes:
        names = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1
                            else suffixes)
        raise ValueError(f"{what} {path}: expected a {names} file, got the suffix "
                         f"{path.suffix!r}")
    if path.exists():
        if folder and not path.is_dir():
            raise ValueError(f"{what} {path}: a file exists there, not a folder; choose another "
                             "path")
        if not folder and path.is_dir():
            raise ValueError(f"{what} {path}: a folder exists there; give a file path")
    above = path.parent if not folder or not path.exists() else path
    while not above.exists():
        if above == above.parent:
            break
        above = above.parent
    if above.exists() and not above.is_dir():
        raise ValueError(f"{what} {path}: {above} is a file, not a folder; choose another path")
    if above.exists() and not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {above} is not writable; choose another "
                         "path")
    return path
