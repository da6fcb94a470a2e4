"""The ``series`` data source: a collection of time series for a global forecaster.

The collection at ``data.path`` (:func:`~seqflow.data.timeseries.read_collection`) is read when
the run starts; :func:`derive_series_config` fills in what the data determine (frequency,
season, context length, the model's channels, local features and global ids) and refuses a
config that says otherwise. :func:`series_splits` cuts the windows
(:class:`~seqflow.data.timeseries.CollectionWindows`) and writes what it read::

    RUN/series.json   frequency, targets, covariates, local feature names, items (ids in
                      global-id order, lengths, first and last timestamps), the items left out
                      of each split (too short), and what reading did (sorted rows, inserted
                      missing steps)
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from seqflow.data.features import atomic_write
from seqflow.data.splits import SPLITS
from seqflow.data.timeseries import (
    CollectionWindows,
    SeriesCollection,
    parse_freq,
    read_collection,
    same_frequency,
    season_length,
)
from seqflow.train.config import Config, ConfigError, DataConfig, ModelConfig

SERIES_FILE = "series.json"


def names(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]`` (a comma-separated config value)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def read_configured(data: DataConfig, path: str | Path | None = None) -> SeriesCollection:
    """The collection at ``path`` (default ``data.path``) read with ``data``'s columns and
    frequency (inferred when ``data.freq`` is empty)."""
    return read_collection(path if path is not None else data.path,
                           item_column=data.item_column, time_column=data.time_column,
                           targets=names(data.targets), covariates=names(data.covariates),
                           freq=data.freq or None)


def derived_values(cfg: Config, collection: SeriesCollection) -> dict[str, object]:
    """``{"data.freq": ..., "model.channels": ..., ...}``: what the data determine."""
    data = cfg.data
    freq = data.freq or collection.freq
    features = len(collection.feature_names())
    return {
        "data.freq": freq,
        "data.season": season_length(freq),
        "data.context": 2 * data.horizon,
        "model.channels": collection.num_variables,
        "model.cond_channels": features,
        "model.upsample_factor": 1,
        "model.num_global_ids": len(collection) if data.item_ids else 0,
    }


def derive_series_config(cfg: Config, collection: SeriesCollection | None = None) -> Config:
    """``cfg`` with the values the ``series`` data determine (:func:`derived_values`).

    A key left at its default takes the derived value; a key set to another value is refused
    in one line (``data.context`` may be set freely; 0 means twice the horizon). The model
    must be a ``sequence_maf`` trained with ``masked_likelihood``.
    """
    if cfg.model.kind != "sequence_maf":
        raise ConfigError(f"model.kind={cfg.model.kind!r}: data.source 'series' trains a "
                          "sequence_maf forecaster")
    if cfg.train.task != "masked_likelihood":
        raise ConfigError(f"train.task={cfg.train.task!r}: data.source 'series' trains with "
                          "masked_likelihood (missing values are left out of the loss)")
    collection = collection if collection is not None else read_configured(cfg.data)
    defaults = {"data": DataConfig(), "model": ModelConfig()}
    sections = {"data": {}, "model": {}}
    for dotted, value in derived_values(cfg, collection).items():
        section, key = dotted.split(".")
        current = getattr(getattr(cfg, section), key)
        default = getattr(defaults[section], key)
        if dotted == "data.context" and current != default:
            continue
        if dotted == "data.freq" and current:
            if not same_frequency(parse_freq(current), collection.frequency):
                raise ConfigError(f"data.freq={current!r} but {collection.source} was read at "
                                  f"{collection.freq!r}")
            continue
        if current not in (default, value):
            raise ConfigError(f"{dotted}={current!r} contradicts the data of {collection.source}"
                              f" ({value!r}); it is derived from the data: drop it")
        sections[section][key] = value
    return dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, **sections["data"]),
        model=dataclasses.replace(cfg.model, **sections["model"]))


def series_summary(collection: SeriesCollection, splits: dict[str, CollectionWindows]) -> dict:
    """The content of ``RUN/series.json`` (see the module docstring)."""
    return {
        "source": collection.source, "freq": collection.freq,
        "targets": list(collection.targets), "covariates": list(collection.covariate_names),
        "features": collection.feature_names(),
        "items": [{"item_id": name, "length": int(s.length), "start": str(s.times[0]),
                   "end": str(s.times[-1])}
                  for name, s in zip(collection.item_ids, collection.items, strict=True)],
        "left_out": {name: list(split.left_out) for name, split in splits.items()},
        "windows": {name: len(split) for name, split in splits.items()},
        "notes": list(collection.notes),
    }


def series_splits(cfg: Config, run_dir: Path | None = None) -> dict[str, CollectionWindows]:
    """``{"train", "val", "test"}`` windows of the configured collection; writes
    ``RUN/series.json`` when ``run_dir`` is given. ``cfg`` is a derived config
    (:func:`derive_series_config`)."""
    data = cfg.data
    collection = read_configured(data)
    if data.item_ids and cfg.model.num_global_ids != len(collection):
        raise ConfigError(f"model.num_global_ids={cfg.model.num_global_ids} but "
                          f"{collection.source} has {len(collection)} items")
    common = dict(val_origins=data.val_origins, test_origins=data.test_origins,
                  scaling=data.scaling, weights=data.window_weights, seed=data.seed,
                  item_ids=data.item_ids)
    context = data.context or 2 * data.horizon
    splits = {
        name: CollectionWindows(collection, context, data.horizon, split=name,
                                num_windows=(data.num_windows or None) if name == "train"
                                else None, **common)
        for name in SPLITS}
    if splits["train"].feature_names and cfg.model.cond_channels != len(
            splits["train"].feature_names):
        raise ConfigError(f"model.cond_channels={cfg.model.cond_channels} but the windows of "
                          f"{collection.source} have {len(splits['train'].feature_names)} local "
                          "features")
    left_out = splits["train"].left_out
    if left_out:
        warnings.warn(f"{collection.source}: {len(left_out)} of {len(collection)} series are too "
                      f"short for a training window of {context + data.horizon} steps before "
                      f"their held-out horizons and are left out of training (first: "
                      f"{left_out[0]!r}; all in {SERIES_FILE})", stacklevel=2)
    if run_dir is not None:
        text = json.dumps(series_summary(collection, splits), indent=1) + "\n"
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write(Path(run_dir) / SERIES_FILE, lambda handle: handle.write(text), mode="w")
    return splits


def item_positions(run_dir: str | Path, collection: SeriesCollection) -> np.ndarray:
    """``(items,)`` global ids of ``collection``'s items: their positions in the training
    collection recorded in ``RUN/series.json``; refuses, naming it, an item the run did not
    train on."""
    path = Path(run_dir) / SERIES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {SERIES_FILE}; the item embedding needs the "
                                "training items' ids")
    trained = {item["item_id"]: i for i, item in enumerate(json.loads(path.read_text())["items"])}
    unknown = [name for name in collection.item_ids if name not in trained]
    if unknown:
        raise ValueError(f"{collection.source}: item {unknown[0]!r} was not among the "
                         f"{len(trained)} items {run_dir} trained on ({len(unknown)} unknown); "
                         "a model with an item embedding forecasts its training items only")
    return np.array([trained[name] for name in collection.item_ids], dtype=np.int64)
