"""A small MLP acting on axis 1, for vectors and for sequences (pointwise in time)."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn


class ChannelMLP(nn.Module):
    """MLP over the feature axis of ``(batch, features)`` or ``(batch, channels, time)``.

    For sequences it is applied independently at every time step (a stack of 1x1 convolutions).
    The last layer starts at zero when ``zero_init_last`` so that a coupling layer starts as the
    identity (Glow's initialization).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int = 64,
        blocks: int = 2,
        zero_init_last: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(blocks):
            layers += [nn.Linear(width, hidden_features), nn.SiLU()]
            width = hidden_features
        last = nn.Linear(width, out_features)
        if zero_init_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, in)`` -> ``(batch, out)``; ``(batch, in, time)`` -> ``(batch, out, time)``."""
        if x.dim() == 3:
            return rearrange(self.net(rearrange(x, "b c t -> b t c")), "b t c -> b c t")
        return self.net(x)
