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


def check_input(
    x: Tensor,
    features: int,
    name: str,
    allow_sequence: bool = False,
) -> None:
    """Raise a ValueError naming expected and received shapes when ``x`` does not fit.

    Only Python-side shape metadata is read, so the check costs nothing under ``torch.compile``.
    """
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


def check_context(context: Tensor | None, context_features: int | None, batch: int, name: str):
    """Validate an optional context tensor ``(batch, context_features[, time])``."""
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
    if context.dim() < 2 or context.shape[0] != batch or context.shape[1] != context_features:
        raise ValueError(
            f"{name}: expected context of shape (batch={batch}, {context_features}[, time]), "
            f"got {tuple(context.shape)}"
        )


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum every axis but the first: ``(batch, ...) -> (batch,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


class Transform(nn.Module):
    """Base class of an invertible map with a tractable log-determinant.

    Subclasses implement :meth:`forward` (data -> noise) and :meth:`inverse` (noise -> data).
    Each returns the transformed tensor (same shape as its input) and ``logabsdet`` of shape
    ``(batch,)``.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
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

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, logabsdet = transform(x, context)
            total = total + logabsdet
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
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

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform(z, context)


def channel_permute(x: Tensor, permutation: Tensor | Sequence[int]) -> Tensor:
    """Reorder axis 1 of ``(batch, features)`` or ``(batch, channels, time)``."""
    return x[:, permutation]
