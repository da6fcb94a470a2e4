"""Elementwise transforms and the bounded log-scale used by every affine layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqflow.checks import check_input
from seqflow.transforms.base import Transform


def soft_clamp(raw: Tensor, bound: float) -> Tensor:
    """Smoothly bound a log-scale to ``(-bound, bound)``: ``a / (1 + |a| / bound)``.

    Identity near zero (slope 1), no hard clamp, so gradients never vanish abruptly or explode
    in deep stacks. ``bound=None``-style unbounded behaviour is ``bound=float('inf')``.

    >>> import torch
    >>> soft_clamp(torch.tensor([0.0, 1e6, -1e6]), 5.0)
    tensor([ 0.0000,  5.0000, -5.0000])
    """
    return raw / (1 + raw.abs() / bound)


class Scaling(Transform):
    """NICE's diagonal scaling layer: ``z = x * exp(s)`` with a learnable ``s`` per feature.

    Accepts ``(batch, features)`` or ``(batch, features, time)``; for sequences the log-det is
    ``time * sum(s)``.
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        self.log_scale = nn.Parameter(torch.zeros(features))

    def _scale(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, self.features, type(self).__name__, allow_sequence=True)
        steps = x.shape[2] if x.dim() == 3 else 1
        s = self.log_scale if x.dim() == 2 else self.log_scale.unsqueeze(-1)
        logabsdet = (self.log_scale.sum() * steps).expand(x.shape[0])
        return s, logabsdet

    def forward(self, x, context=None):
        s, logabsdet = self._scale(x)
        return x * torch.exp(s), logabsdet

    def inverse(self, z, context=None):
        s, logabsdet = self._scale(z)
        return z * torch.exp(-s), -logabsdet
