"""Training data: load a source into a tensor, split it by seed, and shard batches over ranks.

The engine works with any ``torch.utils.data.Dataset`` whose items are tensors; the sources
here produce :class:`~torch.utils.data.TensorDataset` splits of shape ``(num_rows, features)``.

Batch order is a pure function of ``(seed, step)``: the epoch's permutation comes from a
generator seeded with ``seed + epoch``, so a resumed run or a run on another number of processes
reads exactly the same global batches without saving any loader state.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from seqflow.data.toy import TOY_DATASETS, sample_toy
from seqflow.train.config import DataConfig

SPLITS = ("train", "val", "test")


def _check_finite(data: Tensor, origin: str) -> None:
    bad = ~torch.isfinite(data).all(dim=1)
    if bad.any():
        rows = bad.nonzero()[:, 0].tolist()
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        raise ValueError(f"{origin}: non-finite value(s) in row(s) {shown} (0-based data rows)")


def read_csv(path: Path) -> Tensor:
    """Read numeric rows ``(num_rows, features)``; a first row that is not numeric is a header."""
    rows: list[list[float]] = []
    width = None
    with path.open(newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                values = [float(cell) for cell in row]
            except ValueError:
                if line_number == 1:
                    continue  # header
                raise ValueError(
                    f"{path}: line {line_number}: non-numeric value in row {row!r}"
                ) from None
            if width is None:
                width = len(values)
            elif len(values) != width:
                raise ValueError(
                    f"{path}: line {line_number}: expected {width} columns, got {len(values)}"
                )
            rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no numeric rows")
    return torch.tensor(rows, dtype=torch.float32)


def read_npy(path: Path) -> Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: cannot read as a numeric .npy array ({err})") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{path}: expected a numeric array of shape (rows, features), got "
            f"{array.dtype} {array.shape}"
        )
    return torch.from_numpy(array.astype(np.float32))


def load_source(cfg: DataConfig) -> Tensor:
    """All rows of the configured source, ``(num_rows, features)`` float32, checked finite."""
    if cfg.source == "toy":
        if cfg.name not in TOY_DATASETS:
            raise ValueError(
                f"data.name: unknown toy dataset {cfg.name!r}; choose one of {sorted(TOY_DATASETS)}"
            )
        data, origin = sample_toy(cfg.name, cfg.num_samples, seed=cfg.seed), f"toy:{cfg.name}"
    else:
        path = Path(cfg.path)
        if not path.is_file():
            raise ValueError(f"data.path: file not found: {path}")
        data, origin = (read_csv(path) if cfg.source == "csv" else read_npy(path)), str(path)
    _check_finite(data, origin)
    return data


def split_rows(num_rows: int, val_fraction: float, test_fraction: float,
               seed: int) -> dict[str, Tensor]:
    """Disjoint row indices per split from a seeded permutation.

    >>> parts = split_rows(10, 0.2, 0.2, seed=0)
    >>> [len(parts[s]) for s in SPLITS]
    [6, 2, 2]
    """
    perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed))
    num_val, num_test = int(num_rows * val_fraction), int(num_rows * test_fraction)
    num_train = num_rows - num_val - num_test
    return {
        "train": perm[:num_train],
        "val": perm[num_train:num_train + num_val],
        "test": perm[num_train + num_val:],
    }


def build_splits(cfg: DataConfig, features: int | None = None) -> dict[str, TensorDataset]:
    """``{"train", "val", "test"} -> TensorDataset(rows, source_row)``.

    ``rows`` is ``(n, features)`` float32; ``source_row`` ``(n,)`` holds each row's index in the
    source (0-based data row), so errors can name the rows of the original file.
    """
    data = load_source(cfg)
    if features is not None and data.shape[1] != features:
        origin = cfg.path or f"toy:{cfg.name}"
        raise ValueError(
            f"{origin}: data has {data.shape[1]} features per row but model.features={features}"
        )
    parts = split_rows(len(data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    return {name: TensorDataset(data[index], index) for name, index in parts.items()}


def gather(dataset: Dataset, index: Tensor) -> Tensor:
    """Stack the rows ``index`` of a dataset of tensors into ``(len(index), ...)``."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][index]
    return torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in index])


class ShardedBatches:
    """Deterministic, non-overlapping per-rank batches for micro-batch number ``k``.

    Global micro-batch ``k`` holds ``batch_size * world_size`` rows of the epoch's permutation;
    rank ``r`` takes the ``r``-th slice of ``batch_size``. Rows that do not fill a global batch
    at the end of an epoch are dropped (so every rank always gets a full batch).

    >>> a = ShardedBatches(10, batch_size=2, world_size=2, rank=0, seed=0).indices(0)
    >>> b = ShardedBatches(10, batch_size=2, world_size=2, rank=1, seed=0).indices(0)
    >>> both = ShardedBatches(10, batch_size=4, world_size=1, rank=0, seed=0).indices(0)
    >>> torch.equal(torch.cat([a, b]), both)
    True
    """

    def __init__(self, num_rows: int, batch_size: int, world_size: int, rank: int, seed: int):
        self.global_batch = batch_size * world_size
        if num_rows < self.global_batch:
            raise ValueError(
                f"the train split has {num_rows} rows, fewer than one global batch "
                f"(batch_size={batch_size} x {world_size} processes = {self.global_batch})"
            )
        self.num_rows, self.batch_size, self.rank, self.seed = num_rows, batch_size, rank, seed
        self.per_epoch = num_rows // self.global_batch
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def position(self, k: int) -> tuple[int, int]:
        """``(epoch, batch_in_epoch)`` of micro-batch ``k``."""
        return divmod(k, self.per_epoch)

    def indices(self, k: int) -> Tensor:
        epoch, within = self.position(k)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.num_rows, generator=generator)
        start = within * self.global_batch + self.rank * self.batch_size
        return self._perm[start:start + self.batch_size]


def shard_range(num_rows: int, world_size: int, rank: int) -> Tensor:
    """Contiguous, disjoint row indices of rank ``rank`` for evaluation (covers every row)."""
    bounds = torch.linspace(0, num_rows, world_size + 1).round().long()
    return torch.arange(int(bounds[rank]), int(bounds[rank + 1]))
