"""Coupling layers: NICE's additive coupling and RealNVP/Glow's affine coupling.

The features are split into an *identity* part ``x_A`` and a *transformed* part ``x_B``; a
network reads ``x_A`` (and the optional context) and parameterizes an elementwise map of
``x_B``. Both directions are one pass.

Inputs are ``(batch, features)`` or ``(batch, channels, time)``; for sequences the network
acts at every time step (pointwise) by default, or is any module you pass as ``net``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from seqflow.checks import check_context, check_input
from seqflow.nn.mlp import ChannelMLP
from seqflow.transforms.base import Transform, sum_except_batch
from seqflow.transforms.elementwise import LOG_SCALE_BOUND, soft_clamp


def coupling_split(features: int, parity: int, split: str) -> tuple[list[int], list[int]]:
    """Return ``(identity_indices, transformed_indices)``.

    ``split="alternate"`` transforms features whose index has parity ``parity``;
    ``split="half"`` transforms the second half (``parity=0``) or the first half (``parity=1``).

    >>> coupling_split(5, 0, "alternate")
    ([1, 3], [0, 2, 4])
    >>> coupling_split(4, 0, "half")
    ([0, 1], [2, 3])
    """
    if split == "alternate":
        transformed = [i for i in range(features) if i % 2 == parity % 2]
    elif split == "half":
        half = features // 2
        transformed = list(range(half, features)) if parity % 2 == 0 else list(range(half))
    else:
        raise ValueError(f"split must be 'alternate' or 'half', got {split!r}")
    identity = [i for i in range(features) if i not in transformed]
    return identity, transformed


def _with_context(x_a: Tensor, context: Tensor | None) -> Tensor:
    """Concatenate the context on axis 1, broadcasting a vector context over time."""
    if context is None:
        return x_a
    if x_a.dim() == 3 and context.dim() == 2:
        context = context.unsqueeze(-1).expand(-1, -1, x_a.shape[-1])
    return torch.cat([x_a, context], dim=1)


class _Coupling(Transform):
    params_per_feature: int = 1

    def __init__(
        self,
        features: int,
        parity: int = 0,
        context_features: int | None = None,
        hidden_features: int = 64,
        blocks: int = 2,
        split: Literal["alternate", "half"] = "alternate",
        net: nn.Module | None = None,
    ):
        super().__init__()
        self.features = features
        self.context_features = context_features
        identity, transformed = coupling_split(features, parity, split)
        self.register_buffer("identity_index", torch.tensor(identity, dtype=torch.long))
        self.register_buffer("transformed_index", torch.tensor(transformed, dtype=torch.long))
        out = self.params_per_feature * len(transformed)
        if net is None:
            net = _ContextMLP(len(identity) + (context_features or 0), out, hidden_features,
                              blocks)
        self.net = net

    def _params(self, x: Tensor, context: Tensor | None, direction: str) -> Tensor:
        name = f"{type(self).__name__}.{direction}"
        check_input(x, self.features, name, allow_sequence=True)
        check_context(context, self.context_features, x.shape[0], name)
        return self.net(x[:, self.identity_index], context)

    def _assemble(self, x: Tensor, new_b: Tensor) -> Tensor:
        out = x.clone()
        out[:, self.transformed_index] = new_b
        return out


class _ContextMLP(nn.Module):
    """Default coupling network: :class:`ChannelMLP` over ``cat(x_A, context)``."""

    def __init__(self, in_features: int, out_features: int, hidden: int, layers: int):
        super().__init__()
        self.mlp = ChannelMLP(in_features, out_features, hidden, layers)

    def forward(self, x_a: Tensor, context: Tensor | None) -> Tensor:
        return self.mlp(_with_context(x_a, context))


class AdditiveCoupling(_Coupling):
    """NICE coupling (Dinh et al. 2014): ``z_B = x_B + m(x_A)``, volume preserving.

    Args:
        features: size of axis 1.
        parity: which alternating half is transformed (stack layers with parity 0, 1, 0, ...).
        context_features: width of an optional context concatenated to the network input.
        net: optional module ``net(x_A, context) -> (batch, |B|[, time])``.

    >>> import torch
    >>> layer = AdditiveCoupling(4)
    >>> z, logdet = layer(torch.randn(2, 4))
    >>> logdet.tolist()
    [0.0, 0.0]
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift = self._params(x, context, "forward")
        z = self._assemble(x, x[:, self.transformed_index] + shift)
        return z, x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift = self._params(z, context, "inverse")
        x = self._assemble(z, z[:, self.transformed_index] - shift)
        return x, z.new_zeros(z.shape[0])


class AffineCoupling(_Coupling):
    """RealNVP / Glow affine coupling: ``z_B = x_B * exp(s(x_A)) + t(x_A)``.

    ``s = soft_clamp(raw, log_scale_bound)`` (see :func:`soft_clamp`) keeps the scale in
    ``(exp(-bound), exp(bound))`` without a hard clamp. ``log|det| = sum(s)`` (summed over time
    for sequences). The network's last layer starts at zero, so the layer starts as identity.

    Args:
        features: size of axis 1 (features, or channels of a sequence).
        parity: which alternating half is transformed.
        context_features: width of an optional context; a sequence context ``(batch, ctx, time)``
            or a vector context ``(batch, ctx)`` broadcast over time.
        hidden_features, blocks: the default network's size.
        split: ``"alternate"`` (checkerboard over features) or ``"half"`` (first/second half).
        net: optional module ``net(x_A, context) -> (batch, 2 * |B|[, time])``, shift first.
        log_scale_bound: smooth bound of the log-scale, default
            :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).
    """

    params_per_feature = 2

    def __init__(self, features: int, parity: int = 0, context_features: int | None = None,
                 hidden_features: int = 64, blocks: int = 2,
                 split: Literal["alternate", "half"] = "alternate", net: nn.Module | None = None,
                 log_scale_bound: float = LOG_SCALE_BOUND):
        if not log_scale_bound > 0:
            raise ValueError(f"AffineCoupling: log_scale_bound must be > 0, got {log_scale_bound}")
        super().__init__(features, parity, context_features, hidden_features, blocks,
                         split, net)
        self.log_scale_bound = log_scale_bound

    def _shift_log_scale(self, x: Tensor, context: Tensor | None, direction: str):
        shift, raw = self._params(x, context, direction).chunk(2, dim=1)
        return shift, soft_clamp(raw, self.log_scale_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_log_scale(x, context, "forward")
        z_b = x[:, self.transformed_index] * torch.exp(log_scale) + shift
        return self._assemble(x, z_b), sum_except_batch(log_scale)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_log_scale(z, context, "inverse")
        x_b = (z[:, self.transformed_index] - shift) * torch.exp(-log_scale)
        return self._assemble(z, x_b), -sum_except_batch(log_scale)
