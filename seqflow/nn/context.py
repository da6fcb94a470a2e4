"""Conditioning inputs of sequence models: local features and global ids in one object.

The transform contract passes a single ``context`` through every layer. Sequence flows accept

* ``None``;
* a float tensor ``(batch, cond_channels, frames)``: local features (e.g. a mel spectrogram);
* an integer tensor ``(batch,)``: global ids (e.g. speakers);
* a :class:`SequenceContext` holding both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from seqflow.checks import describe_nonfinite


@dataclass
class SequenceContext:
    """Local features ``(batch, cond_channels, frames)`` and/or global ids ``(batch,)``.

    ``shape`` mirrors a tensor's leading ``(batch, ...)`` so that :class:`seqflow.Flow` can read
    the batch size from it.

    >>> import torch
    >>> ctx = SequenceContext(torch.zeros(2, 4, 10), torch.tensor([0, 3]))
    >>> ctx.shape
    torch.Size([2, 4, 10])
    """

    local: Tensor | None = None
    global_ids: Tensor | None = None

    def __post_init__(self) -> None:
        if self.local is None and self.global_ids is None:
            raise ValueError("SequenceContext: give local features, global ids, or both")
        if self.local is not None and self.global_ids is not None:
            if self.local.shape[0] != self.global_ids.shape[0]:
                raise ValueError(
                    f"SequenceContext: local features of shape {tuple(self.local.shape)} and "
                    f"global ids of shape {tuple(self.global_ids.shape)} disagree on the batch"
                )

    @property
    def shape(self) -> torch.Size:
        return self.local.shape if self.local is not None else self.global_ids.shape

    def to(self, *args, **kwargs) -> SequenceContext:
        """Move the local features like ``Tensor.to``; ids only change device."""
        local = None if self.local is None else self.local.to(*args, **kwargs)
        ids = self.global_ids
        if ids is not None and local is not None:
            ids = ids.to(local.device)
        return SequenceContext(local, ids)


Context = Tensor | SequenceContext | None
"""What every sequence layer accepts as ``context`` (see the module docstring)."""


def split_context(context: Tensor | SequenceContext | None) -> tuple[Tensor | None, Tensor | None]:
    """Return ``(local, global_ids)`` from any accepted context form (see module docstring)."""
    if context is None:
        return None, None
    if isinstance(context, SequenceContext):
        return context.local, context.global_ids
    if isinstance(context, Tensor):
        if not context.is_floating_point() and context.dim() == 1:
            return None, context
        if context.is_floating_point() and context.dim() == 3:
            return context, None
    shape = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
    raise ValueError(
        "expected a context of local features (batch, cond_channels, frames), integer global "
        f"ids (batch,), or a SequenceContext; got {shape}"
    )


def prepare_conditioning(
    name: str,
    context: Tensor | SequenceContext | None,
    batch: int,
    length: int,
    cond_channels: int | None,
    num_global_ids: int | None,
    upsampler: Callable[[Tensor], Tensor] | None,
) -> tuple[Tensor | None, Tensor | None]:
    """Validate a context against a model's configuration and upsample its local features.

    Returns ``(cond, ids)``: ``cond`` ``(batch, cond_channels, length)`` or None, ``ids``
    ``(batch,)`` or None. Raises ValueError naming the mismatch otherwise, including NaN/Inf
    local features and global ids outside ``0 .. num_global_ids - 1``.
    """
    local, ids = split_context(context)
    if (local is None) != (cond_channels is None):
        raise ValueError(
            f"{name}: built with cond_channels={cond_channels} but local features were "
            f"{'not ' if local is None else ''}given"
        )
    if (ids is None) != (num_global_ids is None):
        raise ValueError(
            f"{name}: built with num_global_ids={num_global_ids} but global ids were "
            f"{'not ' if ids is None else ''}given"
        )
    cond = None
    if local is not None:
        if local.shape[0] != batch or local.shape[1] != cond_channels:
            raise ValueError(
                f"{name}: expected local features (batch={batch}, {cond_channels}, frames), "
                f"got {tuple(local.shape)}"
            )
        problem = describe_nonfinite(local)
        if problem is not None:
            raise ValueError(f"{name}: local features have {problem}")
        cond = local if upsampler is None else upsampler(local)
        if cond.shape[-1] != length:
            raise ValueError(
                f"{name}: local features of {local.shape[-1]} frames upsample to "
                f"{cond.shape[-1]} samples, but the sequence has {length}"
            )
    if ids is not None:
        if tuple(ids.shape) != (batch,):
            raise ValueError(
                f"{name}: expected global ids of shape ({batch},), got {tuple(ids.shape)}"
            )
        outside = ids[(ids < 0) | (ids >= num_global_ids)]
        if outside.numel():
            raise ValueError(
                f"{name}: global id {int(outside[0])} is out of range for num_global_ids="
                f"{num_global_ids} (valid ids are 0..{num_global_ids - 1})"
            )
    return cond, ids
