"""Batches for the engine: a deterministic ``(seed, step)`` sampler and one collate function.

A batch is a mapping ``{"x", "context", "index"}``: ``x`` ``(batch, *event)``, ``context`` a
tensor ``(batch, ...)``, a :class:`~seqflow.nn.SequenceContext` or None, and ``index``
``(batch,)`` naming each item in its source (data rows of a file, file numbers, ...).

Batch order is a pure function of ``(seed, micro-batch number)``: the epoch's permutation comes
from a generator seeded with ``seed + epoch``, so a resumed run or a run on another number of
processes reads exactly the same global batches without saving any loader state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from seqflow.nn.context import SequenceContext

Batch = dict[str, Any]


class RowDataset(Dataset):
    """Rows of a tensor ``(rows, *event)`` as items ``{"x", "context": None, "index"}``.

    ``__getitems__`` returns a whole collated batch by indexing the tensor once, so a
    DataLoader over rows costs one gather per batch, not one call per row.
    """

    def __init__(self, rows: Tensor, source_rows: Tensor | None = None,
                 context: Tensor | None = None):
        self.rows = rows
        self.source_rows = torch.arange(len(rows)) if source_rows is None else source_rows
        self.context = context

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Batch:
        return {"x": self.rows[i], "context": None if self.context is None else self.context[i],
                "index": int(self.source_rows[i])}

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"x": self.rows[index],
                "context": None if self.context is None else self.context[index],
                "index": self.source_rows[index]}


def collate(items: Sequence[Mapping[str, Any]] | Batch) -> Batch:
    """Stack items ``{"x", "context", "index"}`` into one batch (a batch passes through)."""
    if isinstance(items, Mapping):
        return dict(items)
    if not items:
        raise ValueError("collate: got an empty list of items")
    x = torch.stack([torch.as_tensor(item["x"]) for item in items])
    contexts = [item.get("context") for item in items]
    if all(c is None for c in contexts):
        context = None
    elif isinstance(contexts[0], SequenceContext):
        local = None if contexts[0].local is None else torch.stack([c.local for c in contexts])
        ids = (None if contexts[0].global_ids is None
               else torch.stack([torch.as_tensor(c.global_ids) for c in contexts]))
        context = SequenceContext(local, ids)
    else:
        context = torch.stack([torch.as_tensor(c) for c in contexts])
    index = torch.as_tensor([int(item["index"]) for item in items], dtype=torch.long)
    return {"x": x, "context": context, "index": index}


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move ``x`` and ``context`` of a batch (``index`` stays on the CPU for messages)."""
    context = batch.get("context")
    if context is not None:
        context = context.to(device)
    return {**batch, "x": batch["x"].to(device), "context": context}


class DeterministicBatches(Sampler[list[int]]):
    """Non-overlapping per-rank batches for micro-batch ``k = start, start + 1, ...``.

    Global micro-batch ``k`` holds ``batch_size * world_size`` items of the epoch's
    permutation; rank ``r`` takes the ``r``-th slice of ``batch_size``. Items that do not fill a
    global batch at the end of an epoch are dropped (so every rank always gets a full batch).
    Iteration never ends; the engine stops after its last step.

    >>> a = DeterministicBatches(10, batch_size=2, world_size=2, rank=0, seed=0).indices(0)
    >>> b = DeterministicBatches(10, batch_size=2, world_size=2, rank=1, seed=0).indices(0)
    >>> both = DeterministicBatches(10, batch_size=4, world_size=1, rank=0, seed=0).indices(0)
    >>> torch.equal(torch.cat([a, b]), both)
    True
    """

    def __init__(self, num_items: int, batch_size: int, world_size: int, rank: int, seed: int,
                 start: int = 0):
        self.global_batch = batch_size * world_size
        if num_items < self.global_batch:
            raise ValueError(
                f"the train split has {num_items} items, fewer than one global batch "
                f"(batch_size={batch_size} x {world_size} processes = {self.global_batch})"
            )
        self.num_items, self.batch_size, self.rank, self.seed = num_items, batch_size, rank, seed
        self.per_epoch = num_items // self.global_batch
        self.start = start
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def position(self, k: int) -> tuple[int, int]:
        """``(epoch, batch_in_epoch)`` of micro-batch ``k``."""
        return divmod(k, self.per_epoch)

    def indices(self, k: int) -> Tensor:
        epoch, within = self.position(k)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.num_items, generator=generator)
        start = within * self.global_batch + self.rank * self.batch_size
        return self._perm[start:start + self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start
        while True:
            yield self.indices(k).tolist()
            k += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is unbounded
        return 2**62


def shard_range(num_items: int, world_size: int, rank: int) -> Tensor:
    """Contiguous, disjoint item indices of rank ``rank`` for evaluation (covers every item)."""
    bounds = torch.linspace(0, num_items, world_size + 1).round().long()
    return torch.arange(int(bounds[rank]), int(bounds[rank + 1]))
