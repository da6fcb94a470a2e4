"""Non-flow baselines of the density comparison: a full-covariance Gaussian and a Gaussian KDE.

Both follow the :class:`seqflow.Distribution` API (``log_prob``, ``sample``) on ``(batch, D)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from seqflow.distributions import Distribution

_LOG_2PI = math.log(2 * math.pi)


class FullCovGaussian(Distribution):
    """``N(mean, cov)`` fitted by maximum likelihood (closed form) with :meth:`fit`."""

    def __init__(self, features: int):
        super().__init__(features)
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale_tril", torch.eye(features))

    @torch.no_grad()
    def fit(self, x: Tensor, ridge: float = 1e-6) -> FullCovGaussian:
        """MLE mean and covariance of ``x`` ``(rows, D)``, plus ``ridge`` on the diagonal."""
        x64 = x.double()
        mean = x64.mean(dim=0)
        centered = x64 - mean
        cov = centered.T @ centered / len(x) + ridge * torch.eye(x.shape[1], dtype=torch.float64)
        self.mean.copy_(mean)
        self.scale_tril.copy_(torch.linalg.cholesky(cov))
        return self

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        self._check(x)
        u = torch.linalg.solve_triangular(self.scale_tril, (x - self.mean).T, upper=False).T
        half_logdet = torch.log(torch.diagonal(self.scale_tril)).sum()
        return -0.5 * u.square().sum(dim=1) - half_logdet - 0.5 * x.shape[1] * _LOG_2PI

    def sample(self, num_samples, context=None, length=None):
        eps = torch.randn(num_samples, self.shape[0], dtype=self.mean.dtype,
                          device=self.mean.device)
        return self.mean + eps @ self.scale_tril.T


class GaussianKDE(Distribution):
    """Kernel density estimate with kernel ``N(0, h^2 diag(std^2))`` around every training row.

    ``std`` is the per-feature standard deviation of the training rows and ``h`` a bandwidth
    chosen by :meth:`fit` to maximize the validation log-likelihood over a grid.
    """

    def __init__(self, features: int):
        super().__init__(features)
        self.register_buffer("points", torch.zeros(0, features))
        self.register_buffer("scale", torch.ones(features))

    @torch.no_grad()
    def fit(self, train: Tensor, val: Tensor, grid: Tensor | None = None) -> float:
        """Store ``train`` and set ``h`` by validation; returns the chosen ``h``."""
        if grid is None:
            grid = torch.logspace(-2, 0.5, 16)
        self.points = train.clone()
        std = train.std(dim=0)
        best = (-math.inf, float(grid[0]))
        for h in grid.tolist():
            self.scale = std * h
            score = float(self.log_prob(val).mean())
            if score > best[0]:
                best = (score, h)
        self.scale = std * best[1]
        return best[1]

    def log_prob(self, x: Tensor, context: Tensor | None = None, chunk: int = 512) -> Tensor:
        self._check(x)
        points = self.points / self.scale
        log_norm = torch.log(self.scale).sum() + 0.5 * x.shape[1] * _LOG_2PI
        out = []
        for part in (x / self.scale).split(chunk):
            sq = torch.cdist(part, points).square()
            out.append(torch.logsumexp(-0.5 * sq, dim=1))
        return torch.cat(out) - math.log(len(points)) - log_norm

    def sample(self, num_samples, context=None, length=None):
        which = torch.randint(0, len(self.points), (num_samples,), device=self.points.device)
        return self.points[which] + torch.randn_like(self.points[which]) * self.scale
