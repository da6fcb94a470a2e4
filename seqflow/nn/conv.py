"""Causal 1-D convolutions, plain and with MADE masks across channels.

A causal convolution's output at time ``t`` reads inputs at ``t - j * dilation`` for
``j = 0 .. kernel_size - 1`` (left padding only). In the masked variant the *current* tap
(``j = 0``) carries a MADE mask built from channel degrees; past taps are unrestricted, which
gives the time-major, then channel order of DESIGN.md section 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.nn.masks import mask_from_degrees


class CausalConv1d(nn.Conv1d):
    """Dilated convolution on ``(batch, in_channels, time)`` padded on the left only.

    Output ``(batch, out_channels, time)``; output ``t`` depends on inputs ``t - span + 1 .. t``
    with ``span = (kernel_size - 1) * dilation + 1``.

    >>> import torch
    >>> conv = CausalConv1d(1, 1, kernel_size=2, dilation=4)
    >>> conv(torch.zeros(3, 1, 10)).shape, conv.lookback
    (torch.Size([3, 1, 10]), 4)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        bias: bool = True,
    ):
        if kernel_size < 1 or dilation < 1:
            raise ValueError(
                f"kernel_size and dilation must be >= 1, got kernel_size={kernel_size}, "
                f"dilation={dilation}"
            )
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)

    @property
    def lookback(self) -> int:
        """How many past time steps the convolution reads: ``(kernel_size - 1) * dilation``."""
        return (self.kernel_size[0] - 1) * self.dilation[0]

    def effective_weight(self) -> Tensor:
        """The ``(out, in, kernel_size)`` weight actually applied (masked in subclasses)."""
        return self.weight

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: expected (batch, {self.in_channels}, time), "
                f"got {tuple(x.shape)}"
            )
        x = F.pad(x, (self.lookback, 0))
        return F.conv1d(x, self.effective_weight(), self.bias, dilation=self.dilation)

    def tap_weights(self) -> tuple[Tensor, list[tuple[int, Tensor]]]:
        """Weights for step-by-step evaluation, transposed for ``x @ w``.

        Returns ``(current, past)``: ``current`` is ``(in, out)`` for the input at ``t``; ``past``
        lists ``(lag, (in, out))`` for the inputs at ``t - lag``.
        """
        w = self.effective_weight()
        k, d = self.kernel_size[0], self.dilation[0]
        current = w[:, :, k - 1].t()
        past = [(j * d, w[:, :, k - 1 - j].t()) for j in range(1, k)]
        return current, past


class MaskedCausalConv1d(CausalConv1d):
    """Causal convolution whose current tap is MADE-masked across channels.

    Args:
        in_degrees: ``(in_channels,)`` degrees of the inputs.
        out_degrees: ``(out_channels,)`` degrees of the outputs.
        kernel_size, dilation: as in :class:`CausalConv1d`; ``kernel_size=1`` is a masked 1x1.
        strict: output degree must exceed the input degree (output layers) rather than equal
            or exceed it (hidden layers); see :func:`seqflow.nn.masks.mask_from_degrees`.

    >>> import torch
    >>> conv = MaskedCausalConv1d(torch.tensor([1, 2]), torch.tensor([1, 2]), 2, strict=True)
    >>> conv.mask[:, :, -1].tolist()  # current tap: output 2 may read input 1 only
    [[0.0, 0.0], [1.0, 0.0]]
    """

    def __init__(
        self,
        in_degrees: Tensor,
        out_degrees: Tensor,
        kernel_size: int,
        dilation: int = 1,
        strict: bool = False,
        bias: bool = True,
    ):
        super().__init__(len(in_degrees), len(out_degrees), kernel_size, dilation, bias)
        mask = torch.ones(len(out_degrees), len(in_degrees), kernel_size)
        mask[:, :, -1] = mask_from_degrees(in_degrees, out_degrees, strict)
        self.register_buffer("mask", mask)
        self.register_buffer("in_degrees", torch.as_tensor(in_degrees).clone())
        self.register_buffer("out_degrees", torch.as_tensor(out_degrees).clone())

    def effective_weight(self) -> Tensor:
        return self.weight * self.mask

    @property
    def current_tap_is_zero(self) -> bool:
        """True when the mask removes the current tap entirely (e.g. one channel)."""
        return not bool(self.mask[:, :, -1].any())
