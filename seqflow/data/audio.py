"""Audio corpora: scan a folder, skip bad files with reasons, split by file, serve examples.

A corpus is either any folder of ``.wav``/``.flac``/``.ogg`` files (searched recursively) or an
LJSpeech-style folder: ``wavs/`` plus ``metadata.csv`` with lines ``id|text|normalized text``
(the third field optional), whose ids name ``wavs/<id>.wav``.

Loading (:func:`load_audio`) reads with ``soundfile`` only, mixes channels down to their mean,
resamples with :func:`torchaudio.functional.resample` when the file's rate differs, and rounds
to the 16-bit grid ``{-1, -1 + 2^-15, ..., 1 - 2^-15}``: every example is 16-bit audio on
``[-1, 1)`` whatever the file's bit depth, so log-likelihoods are comparable across corpora.
Uniform dequantization (Theis et al. 2016, "A note on the evaluation of generative models")
adds ``u * 2^-15`` with ``u ~ U[0, 1)`` (on float32's grid, see :func:`dequantize`), one
quantization step of ``2 / 65536``, keeping values in ``[-1, 1)``.

Scanning (:func:`scan_audio`) skips, counts and names files that are unreadable, empty,
non-finite, silent, clipped or too short, and refuses a corpus where more than
``max_bad_fraction`` of the files are bad.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchaudio.functional import resample

from seqflow.data.features import FeatureCache, LogMel, MelConfig, atomic_write
from seqflow.data.splits import SPLITS

__all__ = [
    "AUDIO_EXTENSIONS",
    "QUANTIZATION_STEP",
    "AudioConfig",
    "AudioCorpus",
    "AudioItem",
    "AudioSegments",
    "AudioUtterances",
    "ScanReport",
    "SkippedFile",
    "Split",
    "check_audio",
    "dequantize",
    "find_audio_files",
    "item_generator",
    "load_audio",
    "quantize_16bit",
    "read_metadata",
    "resampled_length",
    "scan_audio",
    "split_files",
    "total_minutes",
]

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
QUANTIZATION_STEP = 2.0 / 65536
_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError)


@dataclass(frozen=True)
class AudioConfig:
    """How a corpus is loaded and which files are refused.

    ``silence_peak``: a file whose mono peak ``max |x|`` is below it is silent (1e-3 is -60 dBFS).
    ``clip_level``/``max_clip_fraction``: a file with more than this fraction of its samples
    (all channels) at ``|x| >= clip_level`` is clipped. ``min_samples``: files shorter than this
    at ``sample_rate`` are too short (0 keeps all). ``max_bad_fraction``: the scan fails when more
    than this fraction of the files are skipped.
    """

    sample_rate: int = 16000
    silence_peak: float = 1e-3
    clip_level: float = 0.999
    max_clip_fraction: float = 1e-3
    max_bad_fraction: float = 0.05
    min_samples: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or self.sample_rate <= 0:
            raise ValueError(f"AudioConfig.sample_rate must be a positive int, got "
                             f"{self.sample_rate!r}")
        if not 0.0 <= self.silence_peak < 1.0:
            raise ValueError(f"AudioConfig.silence_peak must be in [0, 1), got {self.silence_peak}")
        if not 0.0 < self.clip_level <= 1.0:
            raise ValueError(f"AudioConfig.clip_level must be in (0, 1], got {self.clip_level}")
        for name in ("max_clip_fraction", "max_bad_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AudioConfig.{name} must be in [0, 1], got {value}")
        if not isinstance(self.min_samples, int) or self.min_samples < 0:
            raise ValueError(f"AudioConfig.min_samples must be an int >= 0, got "
                             f"{self.min_samples!r}")


@dataclass(frozen=True)
class AudioItem:
    """One usable file: ``path`` relative to the corpus root (POSIX), its length in samples at
    the corpus rate, its own rate, and its transcript when the corpus has one."""

    path: str
    num_samples: int
    file_rate: int
    text: str | None = None
    normalized_text: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str  # unreadable | missing | empty | non_finite | silent | clipped | too_short
    detail: str


@dataclass
class ScanReport:
    """Which files of ``root`` were skipped and why; JSON-serializable."""

    root: str
    num_files: int
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def num_kept(self) -> int:
        return self.num_files - len(self.skipped)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def summary(self, examples: int = 3) -> str:
        """One line: counts per reason and the first few skipped files."""
        counts = ", ".join(f"{n} {reason}" for reason, n in self.counts().items())
        shown = "; ".join(f"{s.path} ({s.reason}: {s.detail})" for s in self.skipped[:examples])
        more = " ..." if len(self.skipped) > examples else ""
        return (f"{self.root}: skipped {len(self.skipped)} of {self.num_files} audio files "
                f"({counts}), e.g. {shown}{more}")

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "num_files": self.num_files,
            "num_kept": self.num_kept,
            "counts": self.counts(),
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
        }

    def to_json(self, path: str | os.PathLike) -> None:
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(Path(path), lambda handle: handle.write(text), mode="w")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ScanReport:
        try:
            data = json.loads(Path(path).read_text())
            skipped = [SkippedFile(**entry) for entry in data["skipped"]]
            return cls(root=data["root"], num_files=int(data["num_files"]), skipped=skipped)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a scan report ({err})") from None


@dataclass
class AudioCorpus:
    """The usable files of a scanned folder, the config they were checked with, the report."""

    root: Path
    config: AudioConfig
    items: list[AudioItem]
    report: ScanReport

    @property
    def paths(self) -> list[str]:
        return [item.path for item in self.items]

    def subset(self, paths: Iterable[str] | None) -> list[AudioItem]:
        """The items named by ``paths`` (all when ``None``); unknown paths are an error."""
        if paths is None:
            return list(self.items)
        by_path = {item.path: item for item in self.items}
        paths = list(paths)
        unknown = [p for p in paths if p not in by_path]
        if unknown:
            raise ValueError(
                f"{self.root}: {len(unknown)} path(s) not among the corpus's usable files, e.g. "
                f"{unknown[:3]} (skipped by the scan, or from another corpus)"
            )
        return [by_path[p] for p in paths]


def quantize_16bit(audio: Tensor) -> Tensor:
    """Round to the 16-bit grid ``k / 32768``, ``k`` in ``[-32768, 32767]`` (values beyond
    ``[-1, 1)``, e.g. from resampling overshoot, are clamped)."""
    return torch.round(audio * 32768.0).clamp_(-32768.0, 32767.0) / 32768.0


def dequantize(audio: Tensor, generator: torch.Generator) -> Tensor:
    """``audio + u * 2^-15`` with ``u`` uniform on ``{0, 1/512, ..., 511/512}``, drawn from
    ``generator``.

    ``u`` is rounded down to multiples of ``2^-9`` so that the noise is a multiple of ``2^-24``
    and the float32 sum is exact: ``x`` stays strictly below the next 16-bit value (and below
    1). ``2^-24`` is float32's resolution just under 1, so no finer noise could be stored there.
    """
    u = torch.floor(torch.rand(audio.shape, generator=generator) * 512.0) / 512.0
    return audio + u * QUANTIZATION_STEP


def _mono_16bit(data: np.ndarray, file_rate: int, sample_rate: int) -> Tensor:
    """``(frames, channels)`` -> ``(time,)`` float32: channel mean, resampled, 16-bit grid."""
    mono = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)).mean(dim=1)
    if file_rate != sample_rate:
        mono = resample(mono, file_rate, sample_rate)
    return quantize_16bit(mono)


def resampled_length(num_frames: int, file_rate: int, sample_rate: int) -> int:
    """Length after :func:`torchaudio.functional.resample`: ``ceil(n * new / orig)``."""
    if file_rate == sample_rate:
        return num_frames
    return -(-num_frames * sample_rate // file_rate)


def load_audio(path: str | os.PathLike, sample_rate: int) -> Tensor:
    """The whole file as mono 16-bit-grid float32 ``(time,)`` at ``sample_rate``."""
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except _READ_ERRORS as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from None
    return _mono_16bit(data, file_rate, sample_rate)


def _load_slice(path: Path, item: AudioItem, sample_rate: int, start: int, length: int) -> Tensor:
    """Samples ``[start, start + length)`` at ``sample_rate``; reads only the slice when the file
    is at that rate (mix-down and rounding act per sample, so this equals slicing the whole)."""
    if item.file_rate == sample_rate:
        try:
            data, _ = sf.read(path, start=start, stop=start + length, dtype="float32",
                              always_2d=True)
        except _READ_ERRORS as err:
            raise ValueError(f"{path}: cannot read audio ({err})") from None
        audio = _mono_16bit(data, item.file_rate, sample_rate)
    else:
        audio = load_audio(path, sample_rate)[start:start + length]
    if audio.shape[0] != length:
        raise ValueError(
            f"{path}: expected {length} samples from {start}, got {audio.shape[0]} "
            "(file changed since the scan?)"
        )
    return audio


def find_audio_files(root: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of all ``.wav``/``.flac``/``.ogg`` files under ``root``, sorted."""
    root = Path(root)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )


def read_metadata(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """LJSpeech ``metadata.csv``: ``(id, text, normalized text)`` per line, fields split on
    ``|`` without quoting; a missing third field repeats the text."""
    rows: list[tuple[str, str, str]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("|")
            if len(fields) not in (2, 3) or not fields[0].strip():
                raise ValueError(
                    f"{path}: line {number}: expected 'id|text|normalized text', got {line[:80]!r}"
                )
            key = fields[0].strip()
            if key in seen:
                raise ValueError(f"{path}: line {number}: id {key!r} repeats line {seen[key]}")
            seen[key] = number
            text = fields[1]
            rows.append((key, text, fields[2] if len(fields) == 3 else text))
    return rows


def check_audio(data: np.ndarray, file_rate: int, config: AudioConfig) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``data`` ``(frames, channels)`` is unusable, else ``None``."""
    if data.shape[0] == 0:
        return "empty", "0 samples"
    if not np.isfinite(data).all():
        return "non_finite", "NaN or infinite samples"
    clipped = float(np.mean(np.abs(data) >= config.clip_level))
    if clipped > config.max_clip_fraction:
        return "clipped", (f"{clipped:.2%} of samples at |x| >= {config.clip_level} "
                           f"(max {config.max_clip_fraction:.2%})")
    peak = float(np.abs(data.mean(axis=1)).max())
    if peak < config.silence_peak:
        return "silent", f"peak {peak:.2e} < {config.silence_peak:.0e}"
    length = resampled_length(data.shape[0], file_rate, config.sample_rate)
    if length < config.min_samples:
        return "too_short", f"{length} samples < {config.min_samples}"
    return None


def scan_audio(root: str | os.PathLike, config: AudioConfig | None = None) -> AudioCorpus:
    """Read every file of the corpus at ``root`` once; keep the usable ones.

    Skipped files are named in ``corpus.report`` and in one logged warning. More than
    ``config.max_bad_fraction`` skipped files, or none usable, is a ``ValueError``.
    """
    config = config if config is not None else AudioConfig()
    root = Path(root)
    if not root.is_dir():
        where = "" if root.is_absolute() else f" (relative to the current directory {Path.cwd()})"
        raise ValueError(f"audio corpus: {root} is not a directory{where}")
    metadata = root / "metadata.csv"
    if metadata.is_file() and (root / "wavs").is_dir():
        entries = [(f"wavs/{key}.wav", text, norm) for key, text, norm in read_metadata(metadata)]
    else:
        entries = [(path, None, None) for path in find_audio_files(root)]
    if not entries:
        raise ValueError(f"audio corpus: no {'/'.join(AUDIO_EXTENSIONS)} files under {root}")

    items: list[AudioItem] = []
    report = ScanReport(root=str(root), num_files=len(entries))
    for path, text, normalized in entries:
        full = root / path
        if not full.is_file():
            report.skipped.append(SkippedFile(path, "missing", "listed but not found"))
            continue
        try:
            data, file_rate = sf.read(full, dtype="float32", always_2d=True)
        except _READ_ERRORS as err:
            report.skipped.append(SkippedFile(path, "unreadable", str(err).splitlines()[0]))
            continue
        problem = check_audio(data, file_rate, config)
        if problem is not None:
            report.skipped.append(SkippedFile(path, *problem))
            continue
        length = resampled_length(data.shape[0], file_rate, config.sample_rate)
        items.append(AudioItem(path, length, file_rate, text, normalized))

    if report.skipped:
        logger.warning("%s", report.summary())
    if not items:
        raise ValueError(f"audio corpus: no usable file; {report.summary()}")
    if len(report.skipped) > config.max_bad_fraction * report.num_files:
        raise ValueError(
            f"audio corpus: more than max_bad_fraction={config.max_bad_fraction} of the files "
            f"are unusable; {report.summary()}"
        )
    return AudioCorpus(root=root, config=config, items=items, report=report)


@dataclass(frozen=True)
class Split:
    """Relative paths per split, and the settings that drew them."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    val_fraction: float
    test_fraction: float

    def to_json(self, path: str | os.PathLike) -> None:
        text = json.dumps(dataclasses.asdict(self), indent=2)
        atomic_write(Path(path), lambda handle: handle.write(text), mode="w")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Split:
        try:
            data = json.loads(Path(path).read_text())
            parts = {k: tuple(data[k]) for k in SPLITS}
            split = cls(**parts, seed=int(data["seed"]), val_fraction=float(data["val_fraction"]),
                        test_fraction=float(data["test_fraction"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a split file ({err})") from None
        if not all(isinstance(p, str) for k in SPLITS for p in parts[k]):
            raise ValueError(f"{path}: split entries must be path strings")
        counts = Counter(p for k in SPLITS for p in parts[k])
        repeated = [p for p, n in counts.items() if n > 1]
        if repeated:
            raise ValueError(f"{path}: path(s) in more than one split or twice: {repeated[:3]}")
        return split


def split_files(paths: Sequence[str], val_fraction: float = 0.05, test_fraction: float = 0.05,
                seed: int = 0) -> Split:
    """Split files (not segments) into train/val/test, deterministically.

    Files are ordered by ``sha256(f"{seed}:{path}")``, so each file's rank depends only on its
    own name and the seed; the first ``round(test_fraction * n)`` go to test, the next
    ``round(val_fraction * n)`` to val (at least one each for a positive fraction), the rest to
    train. Each split is returned sorted.

    >>> s = split_files([f"{i}.wav" for i in range(20)], 0.1, 0.1, seed=0)
    >>> len(s.train), len(s.val), len(s.test)
    (16, 2, 2)
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"split_files: {name} must be in [0, 1), got {value}")
    if len(set(paths)) != len(paths):
        raise ValueError("split_files: paths repeat")

    def count(fraction: float) -> int:
        return max(1, round(fraction * len(paths))) if fraction > 0 else 0

    num_test, num_val = count(test_fraction), count(val_fraction)
    if num_test + num_val >= len(paths):
        raise ValueError(
            f"split_files: {len(paths)} files leave none for training with "
            f"val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    ranked = sorted(paths, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    return Split(
        train=tuple(sorted(ranked[num_test + num_val:])),
        val=tuple(sorted(ranked[num_test:num_test + num_val])),
        test=tuple(sorted(ranked[:num_test])),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )


def item_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator seeded from ``sha256(f"{seed}/{index}")``: independent streams per
    ``(seed, index)``, so an example is a pure function of its index."""
    digest = hashlib.sha256(f"{seed}/{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _drop_short(root: str, items: list[AudioItem], min_samples: int, usable: int | None = None
                ) -> tuple[list[AudioItem], ScanReport]:
    report = ScanReport(root=root, num_files=len(items))
    # with whole ``usable``-sample blocks kept, a file needs min_samples rounded up to a block
    need = min_samples if usable is None else -(-min_samples // usable) * usable
    kept = []
    for item in items:
        if item.num_samples < need:
            report.skipped.append(SkippedFile(item.path, "too_short",
                                              f"{item.num_samples} samples < {need}"))
        else:
            kept.append(item)
    if report.skipped:
        logger.warning("%s", report.summary())
    if not kept:
        raise ValueError(f"no file of at least {need} samples; {report.summary()}")
    return kept, report


def _check_rates(corpus: AudioCorpus, mel_config: MelConfig) -> None:
    if corpus.config.sample_rate != mel_config.sample_rate:
        raise ValueError(
            f"{corpus.root}: corpus sample_rate={corpus.config.sample_rate} differs from the "
            f"mel config's sample_rate={mel_config.sample_rate}"
        )


class AudioSegments(Dataset):
    """Random fixed-length training segments; item ``k`` is a pure function of ``(seed, k)``.

    Item ``k`` draws, with :func:`item_generator` ``(seed, k)``, a start uniformly among all
    ``(file, start)`` pairs of the training files (so longer files are drawn proportionally
    more), then the dequantization noise. It returns ``{"x": (1, segment_length) float32,
    "context": (n_mels, segment_length // hop_length) float32, "index": k}``, where ``context``
    is :class:`LogMel` of the segment before dequantization, i.e. what synthesis computes from
    the same audio. Files shorter than one segment are skipped and named in ``self.report``.
    ``len()`` is ``num_items`` (default: training samples // segment_length); any index >= 0 is
    valid.
    """

    def __init__(self, corpus: AudioCorpus, paths: Iterable[str] | None, mel_config: MelConfig,
                 segment_length: int, seed: int, num_items: int | None = None,
                 dequantize: bool = True):
        _check_rates(corpus, mel_config)
        hop = mel_config.hop_length
        if segment_length <= 0 or segment_length % hop:
            raise ValueError(
                f"AudioSegments: segment_length={segment_length} must be a positive multiple "
                f"of hop_length={hop}"
            )
        if segment_length < mel_config.min_samples:
            raise ValueError(
                f"AudioSegments: segment_length={segment_length} is shorter than LogMel's "
                f"minimum {mel_config.min_samples}"
            )
        self.root = corpus.root
        self.items, self.report = _drop_short(str(corpus.root), corpus.subset(paths),
                                              segment_length)
        self.segment_length, self.seed, self.dequantize = segment_length, seed, dequantize
        self.sample_rate = mel_config.sample_rate
        self.logmel = LogMel(mel_config)
        starts = torch.tensor([item.num_samples - segment_length + 1 for item in self.items])
        self._cumulative = torch.cumsum(starts, dim=0)
        total = sum(item.num_samples for item in self.items)
        self.num_items = num_items if num_items is not None else max(1, total // segment_length)
        if self.num_items <= 0:
            raise ValueError(f"AudioSegments: num_items must be positive, got {num_items}")

    def __len__(self) -> int:
        return self.num_items

    def locate(self, index: int) -> tuple[str, int]:
        """``(relative path, start sample)`` of item ``index``."""
        item, start, _ = self._draw(index)
        return item.path, start

    def _draw(self, index: int) -> tuple[AudioItem, int, torch.Generator]:
        if index < 0:
            raise IndexError(f"AudioSegments: index must be >= 0, got {index}")
        generator = item_generator(self.seed, index)
        position = int(torch.randint(int(self._cumulative[-1]), (1,), generator=generator))
        which = int(torch.searchsorted(self._cumulative, position, right=True))
        offset = position - (int(self._cumulative[which - 1]) if which else 0)
        return self.items[which], offset, generator

    def __getitem__(self, index: int) -> dict:
        item, start, generator = self._draw(int(index))
        clean = _load_slice(self.root / item.path, item, self.sample_rate, start,
                            self.segment_length)
        with torch.no_grad():
            context = self.logmel(clean[None])[0]
        x = dequantize(clean, generator) if self.dequantize else clean
        return {"x": x[None], "context": context, "index": int(index)}


class AudioUtterances(Dataset):
    """Whole utterances for evaluation: ``{"x": (1, T), "context": (n_mels, T // hop),
    "index": i, "path": str}`` with ``T`` the file's length trimmed down to a multiple of the hop.

    ``context`` is :class:`LogMel` of the trimmed, undequantized audio, taken from ``cache`` when
    given (keyed by the file and the mel config). Optional dequantization uses
    :func:`item_generator` ``(seed, i)``. Files shorter than LogMel's minimum after trimming are
    skipped and named in ``self.report``.
    """

    def __init__(self, corpus: AudioCorpus, paths: Iterable[str] | None, mel_config: MelConfig,
                 cache: FeatureCache | None = None, dequantize: bool = False, seed: int = 0):
        _check_rates(corpus, mel_config)
        if cache is not None and cache.mel_config != mel_config:
            raise ValueError("AudioUtterances: the feature cache was built for another MelConfig")
        hop = mel_config.hop_length
        self.root = corpus.root
        self.items, self.report = _drop_short(str(corpus.root), corpus.subset(paths),
                                              mel_config.min_samples, usable=hop)
        self.hop_length, self.cache, self.dequantize, self.seed = hop, cache, dequantize, seed
        self.sample_rate = mel_config.sample_rate
        self.logmel = LogMel(mel_config)

    def __len__(self) -> int:
        return len(self.items)

    def _context(self, path: Path, audio: Tensor) -> Tensor:
        def compute() -> Tensor:
            with torch.no_grad():
                return self.logmel(audio[None])[0]

        if self.cache is None:
            return compute()
        context = self.cache.get_or_compute(path, compute)
        if context.shape[1] != audio.shape[0] // self.hop_length:
            logger.warning("feature cache: %s has %d frames for %d samples; recomputing",
                           path, context.shape[1], audio.shape[0])
            context = compute()
            self.cache.put(path, context)
        return context

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        item = self.items[index]
        path = self.root / item.path
        audio = load_audio(path, self.sample_rate)
        audio = audio[: audio.shape[0] // self.hop_length * self.hop_length]
        context = self._context(path, audio)
        x = dequantize(audio, item_generator(self.seed, index)) if self.dequantize else audio
        return {"x": x[None], "context": context, "index": index, "path": item.path}


def total_minutes(items: Sequence[AudioItem], sample_rate: int) -> float:
    return sum(item.num_samples for item in items) / sample_rate / 60.0
