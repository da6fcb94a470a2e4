"""Learned upsampling of frame-rate features to the sample rate (local conditioning)."""

from __future__ import annotations

from torch import Tensor, nn


class ConditionUpsampler(nn.Module):
    """Upsample ``(batch, channels, frames)`` to ``(batch, channels, frames * factor)``.

    A transposed convolution with stride ``factor`` and kernel ``2 * factor``, trimmed to the
    exact length, so every sample interpolates between its own frame and a neighbour. With
    ``factor=1`` it is the identity (features already at the sample rate). The upsampled
    features are not subject to the autoregressive order: the whole context is known up front.

    >>> import torch
    >>> ConditionUpsampler(3, factor=4)(torch.zeros(2, 3, 5)).shape
    torch.Size([2, 3, 20])
    """

    def __init__(self, channels: int, factor: int):
        super().__init__()
        if factor < 1:
            raise ValueError(f"upsampling factor must be >= 1, got {factor}")
        self.channels = channels
        self.factor = factor
        self.conv = (
            nn.ConvTranspose1d(channels, channels, 2 * factor, stride=factor)
            if factor > 1
            else None
        )

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 3 or features.shape[1] != self.channels:
            raise ValueError(
                f"ConditionUpsampler: expected local features (batch, {self.channels}, frames), "
                f"got {tuple(features.shape)}"
            )
        if self.conv is None:
            return features
        frames = features.shape[-1]
        out = self.conv(features)  # length (frames + 1) * factor
        start = self.factor // 2
        return out[..., start : start + frames * self.factor]

    def output_length(self, frames: int) -> int:
        return frames * self.factor
