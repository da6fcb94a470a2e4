"""Readers and writers of numeric rows: CSV and ``.npy`` (and ``.safetensors`` for written
samples), with errors that name the file.

Every reader returns ``(rows, lines)``: float32 rows ``(num_rows, features)`` and, for each
row, the 1-based line of the file it came from (the row number for ``.npy``), so that later
errors (NaN, a bad batch) point at what a person can open and read.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from seqflow.checks import describe_nonfinite


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> dict:
    """``{"size", "sha256"}`` of a file: what a run records of the data it was trained on. A
    full hash is cheap beside what reads the data (the 46 MB speech corpus hashes in well under
    a second)."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}


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


def write_samples(samples: Tensor, path: str | Path) -> None:
    """Write samples as ``.npy``, ``.csv`` (vectors only) or ``.safetensors``."""
    path = Path(path)
    array = samples.detach().cpu().numpy()
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".csv":
        if array.ndim != 2:
            raise ValueError(f"{path}: .csv holds (num_samples, features) rows; these samples "
                             f"have shape {array.shape}; use .npy")
        np.savetxt(path, array, delimiter=",", fmt="%.8g")
    elif path.suffix == ".safetensors":
        save_file({"samples": samples.detach().cpu().contiguous()}, str(path))
    else:
        raise ValueError(f"{path}: unknown sample format {path.suffix!r}; use .npy, .csv or "
                         ".safetensors")


def write_sample_chunks(chunks: Iterable[Tensor], num_samples: int, path: str | Path) -> tuple:
    """Stream ``num_samples`` samples, in chunks, into ``.npy`` (memory-mapped) or ``.csv``;
    returns the shape.

    ``.safetensors`` holds one tensor, so its chunks are gathered in memory first.
    """
    path = Path(path)
    if path.suffix not in (".npy", ".csv", ".safetensors"):
        raise ValueError(f"{path}: unknown sample format {path.suffix!r}; use .npy, .csv or "
                         ".safetensors")
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    start, shape = 0, None
    try:
        if path.suffix == ".safetensors":
            gathered = torch.cat(list(chunks))
            write_samples(gathered, tmp)
            shape = tuple(gathered.shape)
        else:
            out = None
            for block in chunks:
                array = block.cpu().numpy()
                if out is None:
                    shape = (num_samples, *array.shape[1:])
                    if path.suffix == ".npy":
                        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=array.dtype,
                                                        shape=shape)
                    else:
                        if array.ndim != 2:
                            raise ValueError(f"{path}: .csv holds (num_samples, features) "
                                             f"rows; these samples have shape {shape}; use "
                                             ".npy")
                        out = tmp.open("w")
                if path.suffix == ".npy":
                    out[start:start + len(array)] = array
                else:
                    np.savetxt(out, array, delimiter=",", fmt="%.8g")
                start += len(array)
            if path.suffix == ".npy":
                out.flush()
                del out
            else:
                out.close()
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return shape
