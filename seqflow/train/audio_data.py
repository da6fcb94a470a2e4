"""The ``audio`` data source: a speech corpus as training segments and held-out utterances.

The corpus at ``data.path`` (:mod:`seqflow.data.audio`) is scanned once per run build; its
file split is drawn by :func:`~seqflow.data.audio.split_files` the first time and then read
back from the run directory, so evaluation and resumption always use the files training used::

    RUN/audio_split.json   {"train": [...], "val": [...], "test": [...], "seed", fractions}
    RUN/audio_scan.json    the corpus scan (skipped files with reasons) and, per split, the
                           files too short for one training segment
    RUN/features/          whole-utterance log-mels (unless data.cache_dir names another place)

One :class:`~seqflow.data.features.LogMel` configuration (``data.mel``) serves training,
evaluation, synthesis and metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seqflow.data.audio import (
    AudioConfig,
    AudioCorpus,
    AudioSegments,
    AudioUtterances,
    Split,
    scan_audio,
    split_files,
)
from seqflow.data.features import FeatureCache, MelConfig, atomic_write
from seqflow.data.sources import file_digest
from seqflow.data.splits import SPLITS
from seqflow.train.config import Config, ConfigError, DataConfig

SPLIT_FILE = "audio_split.json"
# Size and sha256 of every file of the split, as trained on.
DIGEST_FILE = "audio_digests.json"
SCAN_FILE = "audio_scan.json"
FEATURES_DIR = "features"
# Validation/test segments draw from seeds apart from the training segments' ``data.seed``.
HELD_OUT_SEED = {"val": 1_000_003, "test": 2_000_003}


def check_mel_model(cfg: Config) -> None:
    """A mel-conditioned model must read ``n_mels`` bands and upsample by the hop."""
    data, model = cfg.data, cfg.model
    if model.cond_channels not in (0, data.mel.n_mels):
        raise ConfigError(f"model.cond_channels={model.cond_channels} but data.mel.n_mels="
                          f"{data.mel.n_mels}: the model reads the mel bands as its local "
                          "context")
    if model.cond_channels and model.upsample_factor != data.mel.hop_length:
        raise ConfigError(f"model.upsample_factor={model.upsample_factor} must equal "
                          f"data.mel.hop_length={data.mel.hop_length} (samples per mel frame)")


def scan(root: str | Path, data: DataConfig) -> AudioCorpus:
    """Scan the corpus at ``root`` with ``data``'s rate and bad-file tolerance."""
    return scan_audio(root, AudioConfig(sample_rate=data.mel.sample_rate,
                                        max_bad_fraction=data.max_bad_fraction))


@dataclass
class AudioRun:
    """The corpus of a run, its file split and the feature settings."""

    corpus: AudioCorpus
    split: Split
    mel: MelConfig
    cache: FeatureCache | None


def record_digests(root: Path, split: Split, path: Path) -> None:
    """Write the size and sha256 of every file of ``split`` (relative to ``root``) to ``path``."""
    digests = {rel: file_digest(root / rel) for name in SPLITS for rel in getattr(split, name)}
    text = json.dumps(digests, indent=1, sort_keys=True)
    atomic_write(path, lambda handle: handle.write(text), mode="w")


def check_digests(root: Path, split: Split, path: Path) -> None:
    """Refuse, in one line naming the file, a split file whose content differs from the one the
    run was trained on (a re-prepared or edited corpus); runs without a record pass."""
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    for name in SPLITS:
        for rel in getattr(split, name):
            now = file_digest(root / rel)
            then = recorded.get(rel)
            if then is not None and then != now:
                raise ValueError(f"{root / rel} changed since the run was trained on it "
                                 f"({then['size']} bytes, sha256 {then['sha256'][:12]} then; "
                                 f"{now['size']} bytes, sha256 {now['sha256'][:12]} now): its "
                                 f"{name} scores would not be comparable; restore the corpus "
                                 "or train a new run")


def open_corpus(cfg: Config, run_dir: str | Path | None) -> AudioRun:
    """Scan ``cfg.data.path``; read the run's split (checking that its files are the ones the
    run was trained on), or draw it and write it, with the files' digests, to ``run_dir``."""
    data = cfg.data
    mel = data.mel
    corpus = scan(data.path, data)
    split_path = None if run_dir is None else Path(run_dir) / SPLIT_FILE
    if split_path is not None and split_path.is_file():
        split = Split.from_json(split_path)
        for name in SPLITS:
            corpus.subset(getattr(split, name))  # every file of the split must still be usable
        check_digests(corpus.root, split, Path(run_dir) / DIGEST_FILE)
    else:
        try:
            split = split_files(corpus.paths, data.val_fraction, data.test_fraction, data.seed)
        except ValueError as err:
            raise ValueError(f"{data.path}: {err}") from None
        if split_path is not None:
            record_digests(corpus.root, split, Path(run_dir) / DIGEST_FILE)
            split.to_json(split_path)
    cache_root = data.cache_dir or (None if run_dir is None else Path(run_dir) / FEATURES_DIR)
    cache = None if cache_root is None else FeatureCache(cache_root, mel)
    return AudioRun(corpus, split, mel, cache)


def segments(run: AudioRun, cfg: Config, name: str) -> AudioSegments:
    """Training segments (``name="train"``) or fixed held-out segments of a split."""
    data = cfg.data
    paths = getattr(run.split, name)
    if name == "train":
        return AudioSegments(run.corpus, paths, run.mel, data.segment_length, data.seed,
                             num_items=data.num_samples, dequantize=data.dequantize)
    return AudioSegments(run.corpus, paths, run.mel, data.segment_length,
                         data.seed + HELD_OUT_SEED[name], num_items=data.val_items or None,
                         dequantize=data.dequantize)


def audio_splits(cfg: Config, run_dir: str | Path | None = None) -> dict[str, AudioSegments]:
    """``{"train", "val", "test"}`` segment datasets; writes the split and scan report."""
    check_mel_model(cfg)
    run = open_corpus(cfg, run_dir)
    out = {name: segments(run, cfg, name) for name in SPLITS}
    if run_dir is not None:
        report = {"scan": run.corpus.report.to_dict(),
                  "too_short_for_a_segment": {name: ds.report.to_dict()
                                              for name, ds in out.items()}}
        text = json.dumps(report, indent=2)
        atomic_write(Path(run_dir) / SCAN_FILE, lambda handle: handle.write(text), mode="w")
    return out


def recorded_split(run_dir: str | Path) -> Split:
    """The file split that training recorded in ``run_dir`` (relative paths per split)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir}: no {SPLIT_FILE}; not an audio run directory")
    return Split.from_json(path)


def utterances(cfg: Config, run_dir: str | Path, split: str = "test",
               data_dir: str | Path | None = None) -> AudioUtterances:
    """Whole utterances of a run's ``split``, or of every usable file of ``data_dir``.

    Dequantized as in training (``data.dequantize``) with noise drawn from ``(data.seed,
    utterance index)``, so every model scored on them sees the same values.
    """
    data = cfg.data
    if data_dir is not None:
        corpus = scan(data_dir, data)
        mel = data.mel
        cache_root = data.cache_dir or Path(run_dir) / FEATURES_DIR
        return AudioUtterances(corpus, None, mel, FeatureCache(cache_root, mel),
                               dequantize=data.dequantize, seed=data.seed)
    if split not in SPLITS:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    run = open_corpus(cfg, run_dir)
    return AudioUtterances(run.corpus, getattr(run.split, split), run.mel, run.cache,
                           dequantize=data.dequantize, seed=data.seed)
