"""Channel mixing: Glow's invertible 1x1 convolution (LU-parameterized) and permutations.

All act on axis 1 of ``(batch, features)`` or ``(batch, channels, time)``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from seqflow.checks import check_input
from seqflow.transforms.base import Transform


class InvertibleLinear(Transform):
    """``z = W x`` over channels with ``W = P L (U + diag(sign * exp(log_diag)))`` (Glow).

    ``P`` is a fixed permutation, ``L`` unit lower-triangular, ``U`` strictly upper-triangular.
    ``log|det W| = sum(log_diag)`` costs O(D); the inverse is two triangular solves. For
    sequences the same ``W`` acts at every time step (a 1x1 convolution) and the log-det is
    multiplied by the number of steps. Initialized from a random rotation.
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        q, _ = torch.linalg.qr(torch.randn(features, features))
        p, l, u = torch.linalg.lu(q)
        diag = torch.diagonal(u)
        self.register_buffer("permutation", p)
        self.register_buffer("sign_diag", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(features, features), -1))
        self.lower = nn.Parameter(torch.tril(l, -1))
        self.upper = nn.Parameter(torch.triu(u, 1))
        self.log_diag = nn.Parameter(torch.log(diag.abs()))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.features, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_diag * self.log_diag.exp())
        return lower, upper

    def weight(self) -> Tensor:
        """The ``(features, features)`` matrix ``W``."""
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def _logabsdet(self, x: Tensor) -> Tensor:
        steps = x.shape[2] if x.dim() == 3 else 1
        return (self.log_diag.sum() * steps).expand(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, self.features, "InvertibleLinear.forward", allow_sequence=True)
        w = self.weight()
        z = torch.einsum("oc,bc...->bo...", w, x)
        return z, self._logabsdet(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, self.features, "InvertibleLinear.inverse", allow_sequence=True)
        lower, upper = self._factors()
        columns = rearrange(z, "b c t -> c (b t)") if z.dim() == 3 else z.T
        y = self.permutation.T @ columns
        y = torch.linalg.solve_triangular(lower, y, upper=False, unitriangular=True)
        y = torch.linalg.solve_triangular(upper, y, upper=True)
        if z.dim() == 3:
            x = rearrange(y, "c (b t) -> b c t", b=z.shape[0])
        else:
            x = y.T
        return x, -self._logabsdet(z)


class _Permutation(Transform):
    def __init__(self, permutation: Tensor):
        super().__init__()
        self.features = len(permutation)
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, self.features, f"{type(self).__name__}.forward", allow_sequence=True)
        return x[:, self.permutation], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, self.features, f"{type(self).__name__}.inverse", allow_sequence=True)
        return z[:, self.inverse_permutation], z.new_zeros(z.shape[0])


class Reverse(_Permutation):
    """Reverse the order of axis 1 (volume preserving)."""

    def __init__(self, features: int):
        super().__init__(torch.arange(features - 1, -1, -1))


class RandomPermutation(_Permutation):
    """A fixed random permutation of axis 1, stored as a buffer (volume preserving).

    >>> import torch
    >>> p = RandomPermutation(4, seed=0)
    >>> x = torch.arange(4.0)[None]
    >>> torch.equal(p.inverse(p(x)[0])[0], x)
    True
    """

    def __init__(self, features: int, seed: int | None = None):
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        super().__init__(torch.randperm(features, generator=generator))
