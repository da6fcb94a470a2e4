"""Audio files in and out of the speech applications: 16-bit wavs and the log-mel of a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from seqflow.data.audio import load_audio
from seqflow.data.features import LogMel


def write_wav(samples: Tensor, sample_rate: int, path: str | Path, what: str) -> None:
    """Write a waveform ``(time,)`` on ``[-1, 1)`` as 16-bit PCM; refuse a non-finite one.

    ``what`` names the waveform in the error (e.g. the run that generated it).
    """
    array = samples.double().numpy()
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: the generated waveform is not finite; refusing to write it")
    sf.write(path, np.clip(array, -1.0, 1.0 - 2.0**-15), sample_rate, subtype="PCM_16")


def mel_of_audio_file(path: str | Path, logmel: LogMel) -> tuple[Tensor, Tensor]:
    """``(audio (time,), log-mel (1, n_mels, frames))`` of an audio file at the mel's rate,
    trimmed to ``frames * hop`` samples."""
    rate, hop = logmel.config.sample_rate, logmel.config.hop_length
    audio = load_audio(path, rate)
    if audio.shape[0] < logmel.config.min_file_samples:
        raise ValueError(f"{path}: {audio.shape[0]} samples at {rate} Hz is shorter than the "
                         f"minimum {logmel.config.min_file_samples} for a log-mel (whole hops "
                         f"of {hop} samples, longer than the STFT's reflect pad "
                         f"{max(logmel.config.padding)})")
    audio = audio[: audio.shape[0] // hop * hop]
    with torch.no_grad():
        return audio, logmel(audio[None])
