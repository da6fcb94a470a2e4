"""Readers of numeric rows from files: CSV and ``.npy``, with errors that name the file.

Every reader returns ``(rows, lines)``: float32 rows ``(num_rows, features)`` and, for each
row, the 1-based line of the file it came from (the row number for ``.npy``), so that later
errors (NaN, a bad batch) point at what a person can open and read.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqflow.checks import describe_nonfinite


def read_csv(path: Path) -> tuple[Tensor, Tensor]:
    """Comma-separated numeric rows; a first row that is not numeric is a header, lines
    starting with ``#`` are comments, empty lines are skipped."""
    rows: list[list[float]] = []
    lines: list[int] = []
    width = None
    seen_data = False
    with path.open(newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if row[0].lstrip().startswith("#"):
                continue
            try:
                values = [float(cell) for cell in row]
            except ValueError:
                if not seen_data and not rows:
                    seen_data = True
                    continue  # header
                hint = ""
                if len(row) == 1 and any(sep in row[0] for sep in (";", "\t", " ")):
                    hint = " (expected comma-separated values; this line has another separator)"
                raise ValueError(
                    f"{path}: line {line_number}: non-numeric value in row {row!r}{hint}"
                ) from None
            seen_data = True
            if width is None:
                width = len(values)
            elif len(values) != width:
                raise ValueError(
                    f"{path}: line {line_number}: expected {width} comma-separated columns, "
                    f"got {len(values)}"
                )
            rows.append(values)
            lines.append(line_number)
    if not rows:
        raise ValueError(f"{path}: no numeric rows")
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(lines)


def read_npy(path: Path) -> tuple[Tensor, Tensor]:
    """A numeric 2-D ``.npy`` array (object arrays are refused, never unpickled)."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        reason = ("it holds Python objects, which seqflow never unpickles"
                  if "pickle" in str(err).lower() else str(err).splitlines()[0])
        raise ValueError(f"{path}: cannot read as a numeric .npy array: {reason}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read as a .npy file: {err}") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{path}: expected a numeric array of shape (rows, features), got "
            f"{array.dtype} {array.shape}"
        )
    return torch.from_numpy(array.astype(np.float32)), torch.arange(1, len(array) + 1)


def read_rows(path: str | Path, kind: str) -> tuple[Tensor, Tensor]:
    """Read ``kind`` (``csv`` or ``npy``) rows from ``path`` and check they are finite."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data.path: file not found: {path}")
    data, lines = read_csv(path) if kind == "csv" else read_npy(path)
    label = "file lines affected" if kind == "csv" else "array rows (1-based) affected"
    problem = describe_nonfinite(data, rows=lines)
    if problem is not None:
        raise ValueError(f"{path}: {problem.replace('rows affected', label)}")
    return data, lines
