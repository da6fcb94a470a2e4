"""The data-source registry: ``DataConfig`` -> train/val/test datasets of batch items.

Every dataset yields items ``{"x", "context", "index"}`` (see :mod:`seqflow.train.batches`).

* ``toy``, ``csv``, ``npy``: rows ``(features,)`` split by a seeded permutation; ``index``
  is the row's 0-based position in the source (csv: its errors name file lines).
* ``toy_audio``: generated clips ``(1, segment_length)`` with a log-mel context
  (:class:`seqflow.data.toy_audio.ToyAudio`); the three splits are disjoint clip ranges.
* ``audio``: a speech corpus split by file: random training segments and fixed held-out
  segments ``(1, segment_length)`` with their log-mel context
  (:mod:`seqflow.train.audio_data`, which also gives whole utterances for evaluation). The
  file split and the scan report are written to the run directory.
* ``series``: a collection of time series (a long-format file or a folder of CSV files):
  windows ``(channels, context + horizon)`` drawn across the series with their local features
  and mask (:mod:`seqflow.train.series_data`); the model's sizes are derived from the data
  (:func:`derive_config`) and what was read is written to the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from seqflow.data.sources import read_rows
from seqflow.data.splits import SPLITS
from seqflow.data.toy import TOY_DATASETS, sample_toy
from seqflow.data.toy_audio import ToyAudio
from seqflow.train.audio_data import audio_splits, check_mel_model
from seqflow.train.batches import RowDataset
from seqflow.train.config import Config, ConfigError, DataConfig
from seqflow.train.series_data import derive_series_config, series_splits

Splits = dict[str, Dataset]


def split_rows(num_rows: int, val_fraction: float, test_fraction: float,
               seed: int) -> dict[str, Tensor]:
    """Disjoint row indices per split from a seeded permutation.

    >>> parts = split_rows(10, 0.2, 0.2, seed=0)
    >>> [len(parts[s]) for s in SPLITS]
    [6, 2, 2]
    """
    perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed))
    num_val, num_test = int(num_rows * val_fraction), int(num_rows * test_fraction)
    num_train = num_rows - num_val - num_test
    return {"train": perm[:num_train], "val": perm[num_train:num_train + num_val],
            "test": perm[num_train + num_val:]}


def _rows(cfg: Config) -> tuple[Tensor, str]:
    data = cfg.data
    if data.source == "toy":
        if data.name not in TOY_DATASETS:
            raise ValueError(f"data.name: unknown toy dataset {data.name!r}; choose one of "
                             f"{sorted(TOY_DATASETS)}")
        return sample_toy(data.name, data.num_samples, seed=data.seed), f"toy:{data.name}"
    rows, _ = read_rows(data.path, data.source)
    return rows, data.path


def _row_splits(cfg: Config) -> Splits:
    rows, origin = _rows(cfg)
    if rows.shape[1] != cfg.model.features:
        raise ValueError(f"{origin}: data has {rows.shape[1]} features per row but "
                         f"model.features={cfg.model.features}")
    parts = split_rows(len(rows), cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.seed)
    return {name: RowDataset(rows[index], index) for name, index in parts.items()}


def _toy_audio(cfg: Config) -> Splits:
    data = cfg.data
    check_mel_model(cfg)
    counts = [int(data.num_samples * f) for f in (data.val_fraction, data.test_fraction)]
    sizes = {"train": data.num_samples - sum(counts), "val": counts[0], "test": counts[1]}
    out, offset = {}, 0
    for name in SPLITS:
        out[name] = ToyAudio(sizes[name], data.segment_length, data.mel.hop_length, data.mel.n_mels,
                             data.mel.sample_rate, data.seed, offset)
        offset += sizes[name]
    return out


def _audio(cfg: Config, run_dir: Path | None = None) -> Splits:
    return audio_splits(cfg, run_dir)


def _series(cfg: Config, run_dir: Path | None = None) -> Splits:
    return series_splits(cfg, run_dir)


DATA_SOURCES: dict[str, Callable[..., Splits]] = {
    "toy": _row_splits,
    "csv": _row_splits,
    "npy": _row_splits,
    "toy_audio": _toy_audio,
    "audio": _audio,
    "series": _series,
}
# Sources whose builder also takes ``run_dir`` (to write, and later read back, run files).
RUN_DIR_SOURCES = ("audio", "series")
# Sources that determine some of the config's values (model sizes, ...) when a run starts.
DERIVED_CONFIG: dict[str, Callable[[Config], Config]] = {"series": derive_series_config}


def derive_config(cfg: Config) -> Config:
    """``cfg`` with the values its data source determines (the identity for most sources)."""
    derive = DERIVED_CONFIG.get(cfg.data.source)
    return cfg if derive is None else derive(cfg)


def build_splits(cfg: Config, run_dir: str | Path | None = None) -> Splits:
    """``{"train", "val", "test"}`` datasets of the configured source.

    ``run_dir``: the run directory, for sources that keep files there (``audio``: its file
    split and scan report).
    """
    if cfg.data.source not in DATA_SOURCES:
        raise ConfigError(f"data.source: {cfg.data.source!r} is not one of "
                          f"{', '.join(DATA_SOURCES)}")
    builder = DATA_SOURCES[cfg.data.source]
    if cfg.data.source in RUN_DIR_SOURCES:
        return builder(cfg, None if run_dir is None else Path(run_dir))
    return builder(cfg)


def describe_source(data: DataConfig) -> str:
    """How errors name the configured data (a path, or the generated set)."""
    return data.path or f"{data.source}:{data.name}"


def check_splits(splits: dict[str, Dataset], features: int) -> Splits:
    """Validate caller-given splits; ``TensorDataset`` rows become :class:`RowDataset`.

    A ``TensorDataset``'s first tensor is ``(rows, features)``; an optional second tensor
    ``(rows,)`` names each row's source index (used in error messages). Any other ``Dataset``
    must yield ``{"x", "context", "index"}`` items.
    """
    if "train" not in splits:
        raise ValueError(f"splits must include 'train', got {sorted(splits)}")
    checked: Splits = {}
    for name in SPLITS:
        dataset = splits.get(name, TensorDataset(torch.empty(0, features)))
        if isinstance(dataset, TensorDataset):
            data = dataset.tensors[0]
            if data.dim() != 2 or data.shape[1] != features:
                raise ValueError(f"split {name!r}: expected shape (rows, {features}), got "
                                 f"{tuple(data.shape)}")
            rows = dataset.tensors[1] if len(dataset.tensors) > 1 else torch.arange(len(data))
            dataset = RowDataset(data.float(), rows)
        elif not isinstance(dataset, Dataset):
            raise ValueError(f"split {name!r} must be a torch Dataset, got "
                             f"{type(dataset).__name__}")
        checked[name] = dataset
    return checked
