"""The data-source registry: ``DataConfig`` -> train/val/test datasets of batch items.

Every dataset yields items ``{"x", "context", "index"}`` (see :mod:`seqflow.train.batches`).

* ``toy``, ``csv``, ``npy``: rows ``(features,)`` split by a seeded permutation; ``index``
  is the row's 0-based position in the source (csv: its errors name file lines).
* ``toy_audio``: generated clips ``(1, segment_length)`` with a log-mel context
  (:class:`seqflow.data.toy_audio.ToyAudio`); the three splits are disjoint clip ranges.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from seqflow.data.sources import read_rows
from seqflow.data.toy import TOY_DATASETS, sample_toy
from seqflow.train.batches import RowDataset
from seqflow.train.config import Config, ConfigError, DataConfig

SPLITS = ("train", "val", "test")
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
    from seqflow.data.toy_audio import ToyAudio

    data, model = cfg.data, cfg.model
    if model.cond_channels not in (0, data.n_mels):
        raise ConfigError(f"model.cond_channels={model.cond_channels} but data.n_mels="
                          f"{data.n_mels}: the model reads the mel bands as its local context")
    if model.cond_channels and model.upsample_factor != data.hop_length:
        raise ConfigError(f"model.upsample_factor={model.upsample_factor} must equal "
                          f"data.hop_length={data.hop_length} (samples per mel frame)")
    counts = [int(data.num_samples * f) for f in (data.val_fraction, data.test_fraction)]
    sizes = {"train": data.num_samples - sum(counts), "val": counts[0], "test": counts[1]}
    out, offset = {}, 0
    for name in SPLITS:
        out[name] = ToyAudio(sizes[name], data.segment_length, data.hop_length, data.n_mels,
                             data.sample_rate, data.seed, offset)
        offset += sizes[name]
    return out


DATA_SOURCES: dict[str, Callable[[Config], Splits]] = {
    "toy": _row_splits,
    "csv": _row_splits,
    "npy": _row_splits,
    "toy_audio": _toy_audio,
}


def build_splits(cfg: Config) -> Splits:
    """``{"train", "val", "test"}`` datasets of the configured source."""
    if cfg.data.source not in DATA_SOURCES:
        raise ConfigError(f"data.source: {cfg.data.source!r} is not one of "
                          f"{', '.join(DATA_SOURCES)}")
    return DATA_SOURCES[cfg.data.source](cfg)


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
