"""Base distributions: the noise side of a flow.

Every distribution here is an ``nn.Module`` whose parameters and constants are registered
(parameters or buffers), so ``.to(device)`` and ``.double()`` move everything.

Event shapes: a distribution built with ``shape=(D,)`` scores vectors ``(batch, D)``; one
built with ``shape=(C,)`` also scores sequences ``(batch, C, time)`` of any length, and
samples them when ``length`` is given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.transforms.base import sum_except_batch

_LOG_2PI = math.log(2 * math.pi)


def draw_noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None,
               uniform: bool = False) -> Tensor:
    """Standard normal (or uniform on ``[0, 1)``) draws of ``shape`` with ``like``'s dtype and
    device. A ``generator`` draws on its own device, then the result moves, so one seed gives
    the same noise wherever the model lives."""
    fn = torch.rand if uniform else torch.randn
    if generator is None:
        return fn(shape, device=like.device, dtype=like.dtype)
    return fn(shape, generator=generator, device=generator.device, dtype=like.dtype).to(
        like.device)


def _as_shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


class Distribution(nn.Module):
    """A density with ``log_prob``, ``sample`` (no gradient) and ``rsample`` (reparameterized).

    Subclasses implement ``log_prob`` and ``sample_and_log_prob``.

    ``context`` is accepted everywhere so that conditional bases (e.g. a MADE mixture of
    Gaussians) and unconditional ones can be swapped freely.
    """

    def __init__(self, shape: int | tuple[int, ...]):
        super().__init__()
        self.shape = _as_shape(shape)
        # Tracks device and dtype for sampling; not a parameter.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def event_shape(self, length: int | None = None) -> tuple[int, ...]:
        """The shape of one sample: ``shape``, or ``(shape[0], length)`` for sequences."""
        if length is None:
            return self.shape
        return (self.shape[0], length)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``(batch, *event) -> (batch,)``"""
        raise NotImplementedError

    def rsample(
        self, num_samples: int, context: Tensor | None = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``(num_samples, *event)`` reparameterized samples (gradients flow through)."""
        return self.sample_and_log_prob(num_samples, context, length, generator)[0]

    def sample(
        self, num_samples: int, context: Tensor | None = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``(num_samples, *event)`` samples without recording gradients (from
        ``generator`` when given)."""
        with torch.no_grad():
            return self.rsample(num_samples, context, length, generator)

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor | None = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Samples ``(num_samples, *event)`` and their log-density ``(num_samples,)``."""
        raise NotImplementedError

    def _check_num_samples(self, num_samples: int) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"{type(self).__name__}: num_samples must be a positive int, got "
                             f"{num_samples!r}")

    def _check(self, x: Tensor) -> None:
        ok = x.dim() >= 2 and tuple(x.shape[1 : 1 + len(self.shape)]) == self.shape
        if len(self.shape) == 1:
            ok = ok and x.dim() in (2, 3)
        else:
            ok = ok and x.dim() == 1 + len(self.shape)
        if not ok:
            raise ValueError(
                f"{type(self).__name__}: expected shape (batch, {', '.join(map(str, self.shape))}"
                f"{', time' if len(self.shape) == 1 else ''}), got {tuple(x.shape)}"
            )


class StandardNormal(Distribution):
    """Isotropic unit Gaussian.

    >>> import torch
    >>> StandardNormal(2).log_prob(torch.zeros(1, 2))
    tensor([-1.8379])
    """

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check(x)
        return sum_except_batch(-0.5 * x.square() - 0.5 * _LOG_2PI)

    def sample_and_log_prob(self, num_samples, context=None, length=None, generator=None):
        shape = (num_samples, *self.event_shape(length))
        z = draw_noise(shape, self._anchor, generator)
        return z, self.log_prob(z)


class DiagonalNormal(Distribution):
    """Gaussian with learnable per-feature mean and log standard deviation.

    For sequences the same per-channel parameters are shared over time.
    """

    def __init__(self, shape: int | tuple[int, ...]):
        super().__init__(shape)
        self.loc = nn.Parameter(torch.zeros(self.shape))
        self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() == 2 + len(self.shape):  # sequence: broadcast over time
            return self.loc.unsqueeze(-1), self.log_scale.unsqueeze(-1)
        return self.loc, self.log_scale

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check(x)
        loc, log_scale = self._params(x)
        u = (x - loc) * torch.exp(-log_scale)
        return sum_except_batch(-0.5 * u.square() - log_scale - 0.5 * _LOG_2PI)

    def sample_and_log_prob(self, num_samples, context=None, length=None, generator=None):
        shape = (num_samples, *self.event_shape(length))
        eps = draw_noise(shape, self.loc, generator)
        loc, log_scale = self._params(eps)
        x = loc + eps * torch.exp(log_scale)
        return x, self.log_prob(x)


class StandardLogistic(Distribution):
    """Unit logistic, ``log p(x) = -x - 2 softplus(-x)`` per element (NICE's prior).

    >>> import torch
    >>> round(StandardLogistic(1).log_prob(torch.zeros(1, 1)).item(), 4)
    -1.3863
    """

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check(x)
        return sum_except_batch(-x - 2 * F.softplus(-x))

    def sample_and_log_prob(self, num_samples, context=None, length=None, generator=None):
        shape = (num_samples, *self.event_shape(length))
        tiny = torch.finfo(self._anchor.dtype).tiny
        u = draw_noise(shape, self._anchor, generator, uniform=True)
        u = u.clamp(tiny, 1 - torch.finfo(self._anchor.dtype).eps)
        z = torch.log(u) - torch.log1p(-u)
        return z, self.log_prob(z)
