"""Generated audio-like clips with a log-mel context: a quick, offline sequence data source.

Clip ``i`` is a pure function of ``(seed, i)``: two or three harmonic partials of a random
fundamental (80-400 Hz) with slow vibrato and an amplitude envelope, plus white noise, scaled to
a peak near 0.5. Its local context is the clip's log-mel spectrogram ``(n_mels, length / hop)``,
so a model conditioned on it must learn what a vocoder learns: the waveform given its
spectrogram.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset

from seqflow.data.features import LogMel, MelConfig


class ToyAudio(Dataset):
    """``num_clips`` generated clips ``{"x": (1, length), "context": (n_mels, frames), "index"}``.

    >>> data = ToyAudio(4, length=1024, hop_length=256, n_mels=8, seed=0)
    >>> item = data[1]
    >>> item["x"].shape, item["context"].shape
    (torch.Size([1, 1024]), torch.Size([8, 4]))
    """

    def __init__(self, num_clips: int, length: int, hop_length: int, n_mels: int,
                 sample_rate: int = 16000, seed: int = 0, offset: int = 0):
        if length % hop_length:
            raise ValueError(f"ToyAudio: length={length} must be a multiple of "
                             f"hop_length={hop_length}")
        self.num_clips, self.length, self.seed, self.offset = num_clips, length, seed, offset
        self.sample_rate = sample_rate
        self.mel = LogMel(MelConfig(sample_rate=sample_rate, n_fft=4 * hop_length,
                                    hop_length=hop_length, win_length=4 * hop_length,
                                    n_mels=n_mels, f_max=sample_rate / 2))

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, i: int) -> Tensor:
        """The waveform ``(length,)`` of clip ``i``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.offset + i)
        t = torch.arange(self.length, dtype=torch.float64) / self.sample_rate
        f0 = 80 + 320 * torch.rand((), generator=g, dtype=torch.float64)
        vibrato = 1 + 0.02 * torch.sin(2 * math.pi * (3 + 4 * torch.rand((), generator=g)) * t)
        phase = 2 * math.pi * torch.cumsum(f0 * vibrato, 0) / self.sample_rate
        partials = int(torch.randint(2, 4, (), generator=g))
        wave = sum(torch.sin(k * phase) / k for k in range(1, partials + 1))
        envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * (0.5 + torch.rand((), generator=g)) * t
                                         + 2 * math.pi * torch.rand((), generator=g))
        noise = 0.05 * torch.randn(self.length, generator=g, dtype=torch.float64)
        x = envelope * wave + noise
        return (0.5 * x / x.abs().max()).float()

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.num_clips:
            raise IndexError(f"ToyAudio: index {i} out of range for {self.num_clips} clips")
        x = self.clip(i)
        with torch.no_grad():
            mel = self.mel(x.unsqueeze(0))[0]
        return {"x": x.unsqueeze(0), "context": mel, "index": self.offset + i}
