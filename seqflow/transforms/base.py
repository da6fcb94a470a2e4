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

import torch
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

    def inverse_after(
        self, z: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Noise -> data for the time steps that follow ``history``.

        ``z`` ``(batch, C, T)`` is the noise of the new steps and ``history`` ``(batch, C, T0)``
        the data before them; a local context covers ``T0 + T`` steps. Returns the data of the
        new steps ``(batch, C, T)`` and the log-determinant of that map ``(batch,)``. Only
        causal sequence transforms continue a history (those that override this); with
        ``history=None`` this is :meth:`inverse`.
        """
        if history is None:
            return self.inverse(z, context)
        raise ValueError(f"{type(self).__name__}: cannot continue a history (only causal "
                         "sequence transforms and elementwise maps can)")

    def history_image(self, history: Tensor, context: Context, length: int) -> Tensor | None:
        """This layer's forward image of a data ``history`` ``(batch, C, T0)`` that ``length``
        more steps will follow (a local context covers ``T0 + length`` steps), or None when
        the layer does not give it in one pass. :meth:`Compose.inverse_after` hands the image
        to the layers after this one."""
        return None

    def step_affine(self, u: Tensor, context: Context, inverse: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(out, c, l)``: this layer's output in the given direction (``inverse``: noise ->
        data, else data -> noise) written as ``out = u * exp(l) + c`` per element, where ``c``
        and ``l`` depend only on elements before it. Affine autoregressive and elementwise
        affine layers (and compositions of them) have this form in one pass; the per-step
        Gaussians of density distillation rest on it (:mod:`seqflow.transforms.gaussian_steps`).
        """
        self.check_step_affine(inverse)
        raise AssertionError("unreachable: check_step_affine refuses this layer")

    def check_step_affine(self, inverse: bool) -> None:
        """Raise the one-line error of :meth:`step_affine` without running the layer."""
        raise ValueError(f"{type(self).__name__}: not an elementwise or autoregressive affine "
                         "layer (Scaling, ActNorm, AutoregressiveAffine); its per-step "
                         "conditional is not Gaussian in closed form, use a Monte Carlo KL")


class Elementwise(Transform):
    """A transform that acts on each time step on its own (no memory across time): it
    continues any history by ignoring it."""

    def inverse_after(
        self, z: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.inverse(z, context)

    def history_image(self, history: Tensor, context: Context, length: int) -> Tensor:
        return self(history, context)[0]


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

    def inverse_after(
        self, z: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`Transform.inverse_after` through every layer: each continues the history as
        its own data side sees it, i.e. ``history`` mapped by the layers before it. Only
        layers that give that image (:meth:`Transform.history_image`: elementwise layers and
        the linear-prediction filter) may come before the last layer that needs the
        history."""
        if history is None:
            return self.inverse(z, context)
        seen: list[Tensor | None] = []
        h: Tensor | None = history
        for transform in self.transforms:
            seen.append(h)
            # A layer with memory gives the history's image only when it maps the history
            # under the full-length context in one pass (history_image); otherwise None.
            h = None if h is None else transform.history_image(h, context, z.shape[-1])
        total = z.new_zeros(z.shape[0])
        for transform, h in zip(reversed(self.transforms), reversed(seen), strict=True):
            if h is None and not isinstance(transform, Elementwise):
                raise ValueError(f"Compose.inverse_after: {type(transform).__name__} follows a "
                                 "layer with memory; continuing a history needs elementwise "
                                 "(or linear-prediction) layers before the one sequential "
                                 "layer")
            z, logabsdet = transform.inverse_after(z, context, h)
            total = total + logabsdet
        return z, total

    def step_affine(self, u: Tensor, context: Context, inverse: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """The layers' affine maps composed: ``out = u * exp(L) + C`` with
        ``L = sum_k l_k`` and ``C = sum_k c_k prod_{j>k} exp(l_j)`` in the order the direction
        applies them."""
        self.check_step_affine(inverse)
        layers = list(reversed(self.transforms)) if inverse else list(self.transforms)
        shift, log_scale = torch.zeros_like(u), torch.zeros_like(u)
        for layer in layers:
            u, c, log = layer.step_affine(u, context, inverse)
            shift = torch.addcmul(c, shift, torch.exp(log))
            log_scale = log_scale + log
        return u, shift, log_scale

    def check_step_affine(self, inverse: bool) -> None:
        orders = []
        for layer in self.transforms:
            if not isinstance(layer, Transform):
                raise ValueError(f"{type(layer).__name__}: not an elementwise or "
                                 "autoregressive affine layer; its per-step conditional is not "
                                 "Gaussian in closed form, use a Monte Carlo KL")
            layer.check_step_affine(inverse)
            order = getattr(layer, "element_order", None)
            if order is not None:
                orders.append(order)
        if any(not torch.equal(order, orders[0]) for order in orders[1:]):
            raise ValueError("Compose: its autoregressive layers order the channels "
                             "differently, so together they are not autoregressive in one "
                             "order; per-step Gaussians need one channel order")

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
