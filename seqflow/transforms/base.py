"""The transform contract shared by every flow layer in seqflow.

Direction convention (the same as nflows and zuko):

* ``forward(x, context=None) -> (z, logabsdet)`` maps **data to noise** (the normalizing
  direction) and returns ``log|det dz/dx|``.
* ``inverse(z, context=None) -> (x, logabsdet)`` maps **noise to data** (the generative
  direction) and returns ``log|det dx/dz|``.

``logabsdet`` always has shape ``(batch,)``. Inputs are either vectors ``(batch, features)`` or
sequences ``(batch, channels, time)``; a transform that accepts sequences acts on the channel
axis and sums its log-determinant over time. With these conventions

    log p(x) = log pi(f(x)) + logabsdet_f(x).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor, nn

from seqflow.nn.context import Context


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum every axis but the first: ``(batch, ...) -> (batch,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


class Transform(nn.Module):
    """Base class of an invertible map with a tractable log-determinant.

    Subclasses implement :meth:`forward` (data -> noise) and :meth:`inverse` (noise -> data).
    Each returns the transformed tensor (same shape as its input) and ``logabsdet`` of shape
    ``(batch,)``.
    """

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Compose(Transform):
    """Apply transforms in order in ``forward`` and in reverse order in ``inverse``.

    >>> import torch
    >>> from seqflow.transforms import Compose, Reverse
    >>> t = Compose([Reverse(3), Reverse(3)])
    >>> z, logdet = t(torch.arange(6.0).reshape(2, 3))
    >>> z.tolist(), logdet.tolist()
    ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [0.0, 0.0])
    """

    def __init__(self, transforms: Iterable[Transform]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, logabsdet = transform(x, context)
            total = total + logabsdet
        return x, total

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[0])
        for transform in reversed(self.transforms):
            z, logabsdet = transform.inverse(z, context)
            total = total + logabsdet
        return z, total

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]


class Inverse(Transform):
    """Swap the two directions of a transform: ``Inverse(t).forward == t.inverse``."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        return self.transform(z, context)


def channel_permute(x: Tensor, permutation: Tensor | Sequence[int]) -> Tensor:
    """Reorder axis 1 of ``(batch, features)`` or ``(batch, channels, time)``."""
    return x[:, permutation]
