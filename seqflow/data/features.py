"""Log-mel features: one module for training, synthesis and metrics, and an on-disk cache.

:class:`LogMel` maps audio ``(batch, time)`` or ``(batch, 1, time)`` to
``log(max(mel, log_floor))`` of shape ``(batch, n_mels, frames)`` with ``frames = time //
hop_length``. The mel spectrogram is the magnitude (power 1) STFT projected on a Slaney-scale,
Slaney-normalized triangular filterbank (librosa's default mel filters; Slaney 1998, "Auditory
Toolbox", Interval Research Technical Report #1998-010).

Framing: the signal is reflect-padded by ``(n_fft - hop_length) // 2`` samples on the left and the
rest of ``n_fft - hop_length`` on the right, then framed without further padding. Frame ``k``
then starts at sample ``k * hop_length - left`` and, for even ``n_fft - hop_length``, is centred
on the middle of the hop block ``[k * hop_length, (k + 1) * hop_length)``. The frame count is
``1 + (time + n_fft - hop_length - n_fft) // hop_length = time // hop_length`` for every
``time >= hop_length``, so for lengths divisible by the hop ``frames * hop_length == time``
exactly, which a frame-rate upsampler needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

logger = logging.getLogger(__name__)

WINDOWS: dict[str, Callable[..., Tensor]] = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}

# Part of every digest: bump when LogMel's computation changes in a way the fields do not show
# (filterbank scale/normalization, padding), so that cached features of the old kind miss.
FEATURE_VERSION = 1

_INT_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels")
_FLOAT_FIELDS = ("f_min", "f_max", "log_floor")


@dataclass(frozen=True)
class MelConfig:
    """Settings of :class:`LogMel`; validated on construction, hashable, with a stable digest.

    >>> MelConfig(f_max=8000).digest() == MelConfig().digest()
    True
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    window: str = "hann"
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MelConfig.{name} must be a positive int, got {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"MelConfig.{name} must be a number, got {value!r}")
            # ints and floats of equal value must give one digest
            object.__setattr__(self, name, float(value))
        if self.window not in WINDOWS:
            raise ValueError(
                f"MelConfig.window must be one of {sorted(WINDOWS)}, got {self.window!r}"
            )
        if self.win_length > self.n_fft:
            raise ValueError(
                f"MelConfig.win_length={self.win_length} must be <= n_fft={self.n_fft}"
            )
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"MelConfig.hop_length={self.hop_length} must be <= n_fft={self.n_fft}"
            )
        nyquist = self.sample_rate / 2
        if not 0.0 <= self.f_min < self.f_max:
            raise ValueError(
                f"MelConfig needs 0 <= f_min < f_max, got f_min={self.f_min}, f_max={self.f_max}"
            )
        if self.f_max > nyquist:
            raise ValueError(
                f"MelConfig.f_max={self.f_max} exceeds sample_rate/2={nyquist}"
            )
        if not self.log_floor > 0.0:
            raise ValueError(f"MelConfig.log_floor must be > 0, got {self.log_floor}")

    @property
    def padding(self) -> tuple[int, int]:
        """Reflect padding ``(left, right)`` applied before framing; sums to ``n_fft - hop``."""
        total = self.n_fft - self.hop_length
        return total // 2, total - total // 2

    @property
    def min_samples(self) -> int:
        """Shortest input :class:`LogMel` accepts: one hop, and longer than the reflect pad."""
        return max(self.hop_length, max(self.padding) + 1)

    @property
    def min_file_samples(self) -> int:
        """Shortest file that gives a mel frame once trimmed to whole hops: :attr:`min_samples`
        rounded up to a multiple of the hop."""
        return -(-self.min_samples // self.hop_length) * self.hop_length

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """sha256 hex of ``json.dumps({"feature_version": FEATURE_VERSION, **fields},
        sort_keys=True)`` (ints for the sizes, floats for the frequencies and the floor)."""
        payload = {"feature_version": FEATURE_VERSION, **self.to_dict()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class LogMel(nn.Module):
    """``(batch, time)`` or ``(batch, 1, time)`` audio -> ``(batch, n_mels, time // hop)``.

    Wraps :class:`torchaudio.transforms.MelSpectrogram` (power 1, ``center=False``) behind the
    asymmetric reflect padding described in the module docstring, then takes
    ``log(clamp(mel, min=log_floor))``. Computation runs in float32 whatever the input dtype.
    Inputs shorter than ``config.min_samples`` are refused.

    >>> LogMel(MelConfig())(torch.zeros(2, 1, 4096)).shape
    torch.Size([2, 80, 16])
    """

    def __init__(self, config: MelConfig | None = None):
        super().__init__()
        self.config = config = config if config is not None else MelConfig()
        with warnings.catch_warnings():
            # torchaudio warns about empty mel filters; they are refused below instead
            warnings.filterwarnings("ignore", message="At least one mel filterbank")
            self.mel = self._mel_spectrogram(config)
        empty = (self.mel.mel_scale.fb.amax(dim=0) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"MelConfig: n_mels={config.n_mels} is too many for n_fft={config.n_fft} between "
                f"{config.f_min} and {config.f_max} Hz: mel filter(s) {empty[:5]} cover no FFT bin"
            )

    @staticmethod
    def _mel_spectrogram(config: MelConfig) -> MelSpectrogram:
        return MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            pad=0,
            n_mels=config.n_mels,
            window_fn=WINDOWS[config.window],
            power=1.0,
            normalized=False,
            center=False,
            norm="slaney",
            mel_scale="slaney",
        )

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    def forward(self, audio: Tensor) -> Tensor:
        if audio.dim() == 3 and audio.shape[1] == 1:
            audio = audio[:, 0]
        if audio.dim() != 2:
            raise ValueError(
                f"LogMel: expected audio (batch, time) or (batch, 1, time), got shape "
                f"{tuple(audio.shape)}"
            )
        if not audio.is_floating_point():
            raise ValueError(f"LogMel: expected floating-point audio, got {audio.dtype}")
        if audio.shape[-1] < self.config.min_samples:
            raise ValueError(
                f"LogMel: {audio.shape[-1]} samples is shorter than the minimum "
                f"{self.config.min_samples} (one hop and more than the reflect pad)"
            )
        audio = F.pad(audio.float().unsqueeze(1), self.config.padding, mode="reflect").squeeze(1)
        mel = self.mel(audio)
        return torch.log(torch.clamp(mel, min=self.config.log_floor))


def atomic_write(path: Path, write: Callable[[object], None], mode: str = "wb") -> None:
    """Write through a temporary file in the same directory, then ``os.replace`` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureCache:
    """Per-file log-mels on disk, as ``.npy`` float32 arrays ``(n_mels, frames)``.

    An entry's key is the sha256 of the feature config's digest and the file's resolved path,
    size and ``st_mtime_ns``; a changed config or a rewritten/touched file therefore misses.
    Entries live in ``root/<first 16 hex of the config digest>/<key>.npy`` next to a
    ``config.json`` naming the settings. Writes are atomic (temporary file + ``os.replace``), so
    concurrent writers and interrupted runs leave either the old or the new entry. An entry that
    cannot be read back as the expected array is logged and recomputed. Stale entries are not
    deleted.
    """

    def __init__(self, root: str | os.PathLike, mel_config: MelConfig):
        self.root = Path(root)
        self.mel_config = mel_config
        self.directory = self.root / mel_config.digest()[:16]
        self.hits = 0
        self.misses = 0

    def key(self, path: str | os.PathLike) -> str:
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError as err:
            raise ValueError(f"FeatureCache: cannot stat {path}: {err.strerror}") from None
        fields = [self.mel_config.digest(), str(resolved), str(stat.st_size), str(stat.st_mtime_ns)]
        return hashlib.sha256("\0".join(fields).encode()).hexdigest()

    def entry(self, path: str | os.PathLike) -> Path:
        return self.directory / f"{self.key(path)}.npy"

    def get(self, path: str | os.PathLike) -> Tensor | None:
        """The cached features of ``path``, or ``None`` (a miss)."""
        return self._load(self.entry(path), path)

    def _load(self, entry: Path, path: str | os.PathLike) -> Tensor | None:
        if not entry.is_file():
            self.misses += 1
            return None
        try:
            array = np.load(entry, allow_pickle=False)
        except (OSError, ValueError) as err:
            logger.warning("feature cache: unreadable entry %s for %s (%s); recomputing",
                           entry, path, err)
            self.misses += 1
            return None
        if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != self.mel_config.n_mels:
            logger.warning("feature cache: entry %s for %s holds %s %s; recomputing",
                           entry, path, array.dtype, array.shape)
            self.misses += 1
            return None
        self.hits += 1
        return torch.from_numpy(array)

    def put(self, path: str | os.PathLike, features: Tensor) -> None:
        """Store ``features`` ``(n_mels, frames)`` for ``path`` (its current size and mtime)."""
        self._store(self.entry(path), path, features)

    def _store(self, entry: Path, path: str | os.PathLike, features: Tensor) -> None:
        if features.dim() != 2 or features.shape[0] != self.mel_config.n_mels:
            raise ValueError(
                f"FeatureCache.put: expected ({self.mel_config.n_mels}, frames) features for "
                f"{path}, got shape {tuple(features.shape)}"
            )
        array = np.ascontiguousarray(features.detach().cpu().float().numpy())
        config_file = self.directory / "config.json"
        if not config_file.is_file():
            text = json.dumps(
                {"feature_version": FEATURE_VERSION, **self.mel_config.to_dict()}, indent=2
            )
            atomic_write(config_file, lambda handle: handle.write(text), mode="w")
        atomic_write(entry, lambda handle: np.save(handle, array, allow_pickle=False))

    def get_or_compute(self, path: str | os.PathLike, compute: Callable[[], Tensor]) -> Tensor:
        """Cached features of ``path``, else ``compute()`` stored and returned.

        The key is taken before ``compute`` runs, so a file that changes meanwhile is stored
        under its old key and misses next time.
        """
        entry = self.entry(path)
        cached = self._load(entry, path)
        if cached is not None:
            return cached
        features = compute()
        self._store(entry, path, features)
        return features
