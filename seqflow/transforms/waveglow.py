"""A WaveGlow-style flow: squeeze, then ActNorm, invertible 1x1 and affine coupling.

Both directions are one pass, which is the point of comparison with the autoregressive
flows: ``g`` consecutive samples are squeezed into channels, ``(batch, C, T) ->
(batch, C * g, T / g)``, and each step is ActNorm -> InvertibleLinear (a 1x1 convolution over
channels) -> AffineCoupling whose network is a *non-causal* WaveNet-like stack
(:class:`CouplingWaveNet`) with local conditioning. The output is unsqueezed back, so the base
distribution sees ``(batch, C, T)``. WaveGlow's early outputs (multi-scale) are left out.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from seqflow.checks import check_floating, check_positive
from seqflow.nn.context import Context, prepare_conditioning, split_context
from seqflow.nn.upsampling import ConditionUpsampler
from seqflow.transforms.base import Compose, Transform
from seqflow.transforms.coupling import AffineCoupling, coupling_split
from seqflow.transforms.elementwise import LOG_SCALE_BOUND
from seqflow.transforms.linear import InvertibleLinear
from seqflow.transforms.normalization import ActNorm


def squeeze(x: Tensor, factor: int) -> Tensor:
    """``(batch, C, T) -> (batch, C * factor, T / factor)``; consecutive samples become channels.

    >>> import torch
    >>> squeeze(torch.arange(6.0).reshape(1, 1, 6), 3).tolist()
    [[[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]]
    """
    if x.dim() != 3 or x.shape[-1] % factor:
        raise ValueError(
            f"squeeze: expected (batch, channels, time) with time divisible by {factor}, "
            f"got {tuple(x.shape)}"
        )
    return rearrange(x, "b c (t g) -> b (c g) t", g=factor)


def unsqueeze(x: Tensor, factor: int) -> Tensor:
    """Inverse of :func:`squeeze`: ``(batch, C * factor, T) -> (batch, C, T * factor)``."""
    return rearrange(x, "b (c g) t -> b c (t g)", g=factor)


class CouplingWaveNet(nn.Module):
    """Non-causal gated dilated convolutions with local conditioning, for a coupling layer.

    ``forward(x_a, cond)`` maps ``(batch, in_channels, T)`` and ``(batch, cond_channels, T)``
    to ``(batch, out_channels, T)``. Convolutions are centred (odd ``kernel_size``), dilations
    ``1, 2, 4, ...``; the last 1x1 starts at zero so the coupling starts as the identity.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int | None = None,
        residual_channels: int = 32,
        blocks: int = 4,
        kernel_size: int = 3,
    ):
        super().__init__()
        check_positive("CouplingWaveNet", residual_channels=residual_channels, blocks=blocks)
        if kernel_size % 2 == 0:
            raise ValueError(f"CouplingWaveNet: kernel_size must be odd, got {kernel_size}")
        r = residual_channels
        self.residual_channels = r
        self.start = nn.Conv1d(in_channels, r, 1)
        self.dilated = nn.ModuleList(
            nn.Conv1d(r, 2 * r, kernel_size, dilation=2**i, padding=(kernel_size // 2) * 2**i)
            for i in range(blocks)
        )
        self.cond = nn.Conv1d(cond_channels, 2 * r * blocks, 1) if cond_channels else None
        self.res_skip = nn.ModuleList(nn.Conv1d(r, 2 * r, 1) for _ in range(blocks))
        self.end = nn.Conv1d(r, out_channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def forward(self, x_a: Tensor, cond: Tensor | None = None) -> Tensor:
        r = self.residual_channels
        h = self.start(x_a)
        cond_terms = None if self.cond is None else self.cond(cond).chunk(len(self.dilated), 1)
        skip = 0
        for i, (conv, res_skip) in enumerate(zip(self.dilated, self.res_skip, strict=True)):
            a = conv(h)
            if cond_terms is not None:
                a = a + cond_terms[i]
            out = res_skip(torch.tanh(a[:, :r]) * torch.sigmoid(a[:, r:]))
            h = h + out[:, :r]
            skip = skip + out[:, r:]
        return self.end(skip)


class WaveGlow(Transform):
    """WaveGlow-style flow on ``(batch, channels, time)``; both directions are one pass.

    Args:
        channels: ``C`` of the signal.
        squeeze_factor: ``g``, samples folded into channels (``time`` must be divisible by it).
        steps: number of ActNorm -> InvertibleLinear -> AffineCoupling steps.
        cond_channels: width of local features ``(batch, cond_channels, frames)``, or None.
        upsample_factor: samples per frame of the local features.
        residual_channels, blocks, kernel_size: size of each :class:`CouplingWaveNet`.
        log_scale_bound: smooth bound of the couplings' log-scale (soft clamp), default
            :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).

    ``forward`` is data -> noise, ``inverse`` noise -> data; ``log|det|`` sums the ActNorm,
    1x1 and coupling terms (the squeeze is a permutation).

    >>> import torch
    >>> flow = WaveGlow(1, squeeze_factor=4, steps=2, residual_channels=8, blocks=2).eval()
    >>> x = torch.randn(2, 1, 64)
    >>> z, logdet = flow(x)
    >>> torch.allclose(flow.inverse(z)[0], x, atol=1e-5)
    True
    """

    def __init__(
        self,
        channels: int = 1,
        squeeze_factor: int = 8,
        steps: int = 4,
        cond_channels: int | None = None,
        upsample_factor: int = 1,
        residual_channels: int = 32,
        blocks: int = 4,
        kernel_size: int = 3,
        log_scale_bound: float = LOG_SCALE_BOUND,
    ):
        super().__init__()
        check_positive("WaveGlow", channels=channels, squeeze_factor=squeeze_factor,
                       steps=steps, cond_channels=cond_channels, upsample_factor=upsample_factor)
        if upsample_factor != 1 and cond_channels is None:
            raise ValueError(f"WaveGlow: upsample_factor={upsample_factor} needs cond_channels")
        width = channels * squeeze_factor
        if width < 2:
            raise ValueError(
                f"WaveGlow: channels * squeeze_factor must be >= 2 to split, got {width}"
            )
        self.channels = channels
        self.squeeze_factor = squeeze_factor
        self.cond_channels = cond_channels
        self.upsampler = (
            ConditionUpsampler(cond_channels, upsample_factor) if cond_channels else None
        )
        cond_width = cond_channels * squeeze_factor if cond_channels else None
        layers_: list[Transform] = []
        for i in range(steps):
            identity, transformed = coupling_split(width, i % 2, "half")
            net = CouplingWaveNet(
                len(identity), 2 * len(transformed), cond_width, residual_channels, blocks,
                kernel_size,
            )
            layers_ += [
                ActNorm(width),
                InvertibleLinear(width),
                AffineCoupling(width, parity=i % 2, context_features=cond_width, split="half",
                               net=net, log_scale_bound=log_scale_bound),
            ]
        self.steps = Compose(layers_)

    def implied_length(self, context: Context) -> int | None:
        local, _ = split_context(context)
        if self.upsampler is None or local is None:
            return None
        return self.upsampler.output_length(local.shape[-1])

    def _prepare(self, y: Tensor, context: Context, direction: str) -> tuple[Tensor, Tensor | None]:
        name = f"WaveGlow.{direction}"
        if (not isinstance(y, Tensor) or y.dim() != 3 or y.shape[1] != self.channels
                or y.shape[-1] % self.squeeze_factor):
            raise ValueError(
                f"{name}: expected (batch, {self.channels}, time) with time divisible by "
                f"{self.squeeze_factor}, got {tuple(y.shape) if isinstance(y, Tensor) else y}"
            )
        check_floating(y, name)
        cond, _ = prepare_conditioning(
            name, context, y.shape[0], y.shape[-1], self.cond_channels, None, self.upsampler
        )
        cond = None if cond is None else squeeze(cond, self.squeeze_factor)
        return squeeze(y, self.squeeze_factor), cond

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Data -> noise in one pass."""
        y, cond = self._prepare(x, context, "forward")
        z, logdet = self.steps(y, cond)
        return unsqueeze(z, self.squeeze_factor), logdet

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Noise -> data in one pass."""
        y, cond = self._prepare(z, context, "inverse")
        x, logdet = self.steps.inverse(y, cond)
        return unsqueeze(x, self.squeeze_factor), logdet
