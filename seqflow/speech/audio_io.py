"""Audio files in and out of the speech applications: 16-bit wavs and the log-mel of a file.

Reading an input (:func:`read_audio_input`) refuses, in one line naming the file and the value,
what would otherwise be converted or misread silently: a wav whose header declares more frames
than the file holds (soundfile reads the part that is there without complaint), another sample
rate, more than one channel, and floating-point samples beyond ``[-1, 1)``. With
``convert=True`` the last three are converted as :func:`~seqflow.data.audio.load_audio` does for
training (resampled with :func:`torchaudio.functional.resample`, channels mixed down to their
mean, rounded and clamped to the 16-bit grid) and each conversion is named in
:attr:`AudioInput.converted`. Silent, clipped, empty and non-finite files are detected by
:func:`~seqflow.data.audio.check_audio` with the thresholds of
:class:`~seqflow.data.audio.AudioConfig`, as ``seqflow eval --data`` and training do, and
raised as :class:`UnusableAudio`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from seqflow.data.audio import AudioConfig, check_audio, load_audio
from seqflow.data.features import LogMel

_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError)


class UnusableAudio(ValueError):
    """A readable file that :func:`~seqflow.data.audio.check_audio` rejects: ``reason`` is one
    of its reasons (``empty``, ``non_finite``, ``clipped``, ``silent``), ``detail`` the value."""

    def __init__(self, path: str | Path, reason: str, detail: str):
        super().__init__(f"{path}: {reason} ({detail}); seqflow eval --data and training skip "
                         "such files too")
        self.path, self.reason, self.detail = str(path), reason, detail


@dataclass
class AudioInput:
    """A checked audio file: ``audio`` ``(frames * hop,)`` at the mel's rate on the 16-bit grid,
    its log-mel ``mel`` ``(1, n_mels, frames)``, the file as found (``source``: ``sample_rate``,
    ``channels``, ``frames``, ``subtype``) and the conversions applied (``converted``)."""

    audio: Tensor
    mel: Tensor
    source: dict
    converted: list[str] = field(default_factory=list)


def write_wav(samples: Tensor, sample_rate: int, path: str | Path, what: str) -> None:
    """Write a waveform ``(time,)`` on ``[-1, 1)`` as 16-bit PCM; refuse a non-finite one.

    ``what`` names the waveform in the error (e.g. the run that generated it).
    """
    array = samples.double().numpy()
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: the generated waveform is not finite; refusing to write it")
    sf.write(path, np.clip(array, -1.0, 1.0 - 2.0**-15), sample_rate, subtype="PCM_16")


def declared_wav_frames(path: str | Path) -> int | None:
    """Frames the ``data`` chunk of a RIFF/WAVE header declares, or ``None`` when the file is
    not RIFF/WAVE or declares no usable size (0 or 0xFFFFFFFF, as streaming writers leave)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = handle.read(size + (size & 1))
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                elif name == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    handle.seek(size + (size & 1), 1)
    except OSError:
        return None


def read_audio_input(path: str | Path, logmel: LogMel, convert: bool = False,
                     config: AudioConfig | None = None) -> AudioInput:
    """Read, check and (with ``convert``) convert an audio file; take its log-mel.

    The audio is trimmed to ``frames * hop`` samples. Raises :class:`UnusableAudio` for a file
    ``check_audio`` rejects (``config``: default thresholds at the mel's rate) and a one-line
    ``ValueError`` for an unreadable or truncated file, a file too short for one mel frame, and,
    unless ``convert``, another rate, several channels or samples beyond ``[-1, 1)``.
    """
    rate, hop = logmel.config.sample_rate, logmel.config.hop_length
    config = config if config is not None else AudioConfig(sample_rate=rate)
    try:
        info = sf.info(str(path))
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except _READ_ERRORS as err:
        raise ValueError(f"{path}: cannot read audio ({' '.join(str(err).split())})") from None
    declared = declared_wav_frames(path)
    declared = max(info.frames, declared or 0)
    if data.shape[0] < declared:
        raise ValueError(f"{path}: truncated: the header declares {declared} frames but "
                         f"{data.shape[0]} can be read; re-export or repair the file")
    problem = check_audio(data, file_rate, config)
    if problem is not None:
        raise UnusableAudio(path, *problem)
    channels = data.shape[1]
    source = {"sample_rate": file_rate, "channels": channels, "frames": data.shape[0],
              "subtype": info.subtype}
    needed = []
    if file_rate != rate:
        needed.append(f"resampled {file_rate} Hz -> {rate} Hz")
    if channels != 1:
        needed.append(f"mixed {channels} channels down to their mean")
    beyond = int(np.count_nonzero((data < -1.0) | (data >= 1.0)))
    if beyond:
        peak = float(np.abs(data).max())
        needed.append(f"clipped {beyond} sample(s) beyond [-1, 1) (peak {peak:.6g})")
    if needed and not convert:
        what = []
        if file_rate != rate:
            what.append(f"{file_rate} Hz where the run's mel is at {rate} Hz")
        if channels != 1:
            what.append(f"{channels} channels where the run takes 1")
        if beyond:
            what.append(f"{beyond} sample(s) beyond [-1, 1) (peak {peak:.6g})")
        raise ValueError(f"{path}: {'; '.join(what)}; convert the file (to {rate} Hz mono "
                         "on [-1, 1)), or pass --convert to have it " + ", ".join(needed)
                         + " and recorded")
    audio = load_audio(path, rate)
    if audio.shape[0] < logmel.config.min_file_samples:
        raise ValueError(f"{path}: {audio.shape[0]} samples at {rate} Hz is shorter than the "
                         f"minimum {logmel.config.min_file_samples} for a log-mel (whole hops "
                         f"of {hop} samples, longer than the STFT's reflect pad "
                         f"{max(logmel.config.padding)})")
    audio = audio[: audio.shape[0] // hop * hop]
    with torch.no_grad():
        mel = logmel(audio[None])
    return AudioInput(audio, mel, source, needed)


def mel_of_audio_file(path: str | Path, logmel: LogMel,
                      convert: bool = False) -> tuple[Tensor, Tensor]:
    """``(audio (time,), log-mel (1, n_mels, frames))`` of an audio file at the mel's rate,
    trimmed to ``frames * hop`` samples; checked as :func:`read_audio_input` checks it."""
    item = read_audio_input(path, logmel, convert)
    return item.audio, item.mel
