"""Elementwise transforms and the bounded log-scale used by every affine layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.checks import check_input
from seqflow.transforms.base import Elementwise

LOG_SCALE_BOUND = 6.0
"""The one default bound of every affine log-scale in seqflow: ``|s| < 6``, i.e. a scale in
``(exp(-6), exp(6)) = (0.0025, 403)`` per layer and element. Every layer and builder that
bounds a log-scale (couplings, MAF/IAF on vectors and sequences, WaveGlow, MADEMoG, the
``maf``/``realnvp``/``glow``/sequence kinds of the model registry through
``model.log_scale_bound``) defaults to it. Wide enough that a few layers reach the scale
range of real data, narrow enough that one layer cannot blow activations up by more than
``e^6`` in either direction."""


def soft_clamp(raw: Tensor, bound: float) -> Tensor:
    """Smoothly bound a log-scale to ``(-bound, bound)``: ``a / (1 + |a| / bound)``.

    Identity near zero (slope 1), no hard clamp, so gradients never vanish abruptly or explode
    in deep stacks. ``bound=None``-style unbounded behaviour is ``bound=float('inf')``. Layers
    pass their ``log_scale_bound`` (default :data:`LOG_SCALE_BOUND`, 6).

    >>> import torch
    >>> soft_clamp(torch.tensor([0.0, 1e6, -1e6]), LOG_SCALE_BOUND)
    tensor([ 0.0000,  6.0000, -6.0000])
    """
    return raw / (1 + raw.abs() / bound)


def floored_log_scale(raw: Tensor, floor: float, bound: float) -> Tensor:
    """Bound a log-scale to ``(floor, bound + eps)`` with an explicit lower floor.

    ``u = bound - softplus(bound - raw)`` caps from above, then
    ``s = floor + softplus(u - floor)`` floors from below: ``s > floor`` (float rounding may
    reach it) and
    ``s < bound + log1p(exp(floor - bound))`` (above ``bound`` by ``exp(floor - bound)`` at
    most, e.g. ``3e-7`` for ``floor=-9, bound=6``). Between the limits ``s`` is close to
    ``raw`` with slope close to 1, so a Gaussian scale can reach ``exp(floor)`` for moderate
    ``raw`` (ClariNet, Ping et al. 2019, floors ``log sigma`` at -7 to -9 for 16-bit audio); the
    symmetric :func:`soft_clamp` of bound 6 reaches ``log sigma = -5`` only at ``raw = -30``.

    >>> import torch
    >>> s = floored_log_scale(torch.tensor([-1e3, -9.0, 0.0, 1e3]), -9.0, 6.0)
    >>> [round(v, 2) for v in s.tolist()]
    [-9.0, -8.31, -0.0, 6.0]
    """
    upper = bound - F.softplus(bound - raw)
    return floor + F.softplus(upper - floor)


def bound_log_scale(raw: Tensor, bound: float, floor: float | None = None) -> Tensor:
    """The log-scale of an affine layer: :func:`soft_clamp` ``(raw, bound)`` when ``floor`` is
    None, else :func:`floored_log_scale` ``(raw, floor, bound)``."""
    if floor is None:
        return soft_clamp(raw, bound)
    return floored_log_scale(raw, floor, bound)


class Scaling(Elementwise):
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

    def check_step_affine(self, inverse: bool) -> None:
        return None

    def step_affine(self, u: Tensor, context=None, inverse: bool = False
                    ) -> tuple[Tensor, Tensor, Tensor]:
        s, _ = self._scale(u)
        log_scale = (-s if inverse else s).expand_as(u)  # forward: z = x exp(s)
        shift = torch.zeros_like(u)
        return torch.addcmul(shift, u, torch.exp(log_scale)), shift, log_scale
