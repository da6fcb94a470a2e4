"""Context-dependent base distributions: amortized variational posteriors ``q(z | x)``.

An encoder maps an observation to features ``h`` ``(batch, context_features)``; the base here
turns ``h`` into the parameters of a Gaussian over ``z`` ``(batch, features)``. Used as the
base of a :class:`~seqflow.Flow` whose layers read the same ``h`` (amortized
:class:`~seqflow.transforms.Planar` / :class:`~seqflow.transforms.Radial`, or
:class:`~seqflow.transforms.IAF` with ``context_features``), ``flow.sample_and_log_prob(n, h)``
draws one reparameterized ``z`` per row of ``h`` with its exact log-density (Rezende & Mohamed
2015; Kingma et al. 2016).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqflow.checks import check_context
from seqflow.distributions.base import Distribution, draw_noise

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ConditionalDiagonalNormal(Distribution):
    """``N(z; mu(h), diag(sigma(h)^2))`` with ``[mu, log sigma] = Linear(h)``.

    Args:
        features: dimension of ``z``.
        context_features: width of the context ``h`` ``(batch, context_features)``.

    ``sample_and_log_prob(n, h)`` needs ``n == len(h)`` (one draw per context row; repeat the
    rows of ``h`` for several draws each).

    >>> import torch
    >>> q = ConditionalDiagonalNormal(2, context_features=3)
    >>> z, log_q = q.sample_and_log_prob(4, torch.randn(4, 3))
    >>> z.shape, log_q.shape
    (torch.Size([4, 2]), torch.Size([4]))
    """

    def __init__(self, features: int, context_features: int):
        super().__init__(features)
        if context_features < 1:
            raise ValueError(f"ConditionalDiagonalNormal: context_features must be >= 1, got "
                             f"{context_features}")
        self.features = features
        self.context_features = context_features
        self.head = nn.Linear(context_features, 2 * features)

    def params(self, context: Tensor | None, batch: int,
               name: str = "ConditionalDiagonalNormal") -> tuple[Tensor, Tensor]:
        """Mean and log standard deviation, each ``(batch, features)``."""
        check_context(context, self.context_features, batch, name)
        if context.dim() != 2:
            raise ValueError(f"{name}: expected a context of shape (batch, "
                             f"{self.context_features}), got {tuple(context.shape)}")
        loc, log_scale = self.head(context).chunk(2, dim=1)
        return loc, log_scale

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``(batch, features) -> (batch,)``"""
        self._check(x)
        if x.dim() != 2:
            raise ValueError(f"ConditionalDiagonalNormal.log_prob: expected (batch, "
                             f"{self.features}), got {tuple(x.shape)}")
        loc, log_scale = self.params(context, x.shape[0], "ConditionalDiagonalNormal.log_prob")
        u = (x - loc) * torch.exp(-log_scale)
        return (-0.5 * u.square() - log_scale - _HALF_LOG_2PI).sum(dim=1)

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor | None = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``z = mu + sigma * eps`` ``(num_samples, features)`` and ``log q(z | h)``."""
        self._check_num_samples(num_samples)
        if length is not None:
            raise ValueError("ConditionalDiagonalNormal is a vector distribution; length must "
                             "be None")
        loc, log_scale = self.params(context, num_samples,
                                     "ConditionalDiagonalNormal.sample_and_log_prob")
        eps = draw_noise(tuple(loc.shape), loc, generator)
        z = loc + eps * torch.exp(log_scale)
        # From eps directly: the same value as log_prob(z), without its round-off.
        return z, (-0.5 * eps.square() - log_scale - _HALF_LOG_2PI).sum(dim=1)
