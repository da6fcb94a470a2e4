"""Forecasts past the end of every series of a collection, from a finished global forecaster.

A run trained on the ``series`` data source (:mod:`seqflow.train.series_data`) forecasts a
collection read with the run's column settings: each series' stream is primed with its last
``data.context`` steps (scaled per window as in training) and ``N`` paths of ``H`` steps are
drawn, with the calendar features of the timestamps that continue the series' frequency.
:func:`forecast_run` writes into an output folder::

    DIR/forecasts.csv    long format: item_id, timestamp[, target], mean, median, q0.1 ... q0.9
                         (the target column only when the series have several variables)
    DIR/paths.npy        float32 (items, num_samples, horizon, variables): the sample paths in
                         the series' units, items in the order of forecast.json's item_ids
    DIR/fan_chart.png    history, median, 50 % and 90 % bands of a few series
    DIR/forecast.json    run, weights, frequency, context, horizon, samples, seed, item ids,
                         targets, notes
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from seqflow.data.timeseries import SeriesCollection, future_inputs, parse_freq, same_frequency
from seqflow.distributions import Flow
from seqflow.forecasting.paths import origin_generator, stream_continuations
from seqflow.nn.context import SequenceContext
from seqflow.train import write_json_atomic
from seqflow.train.config import Config
from seqflow.train.run_dir import load_run
from seqflow.train.series_data import item_positions, read_configured

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FORECAST_FORMATS = ("csv", "parquet")
OUTPUT_FILES = ("forecasts", "paths.npy", "fan_chart.png", "forecast.json")


@dataclass
class FutureForecast:
    """Sample paths past the end of each series.

    ``paths`` ``(items, N, H, D)`` float64 in the series' units; ``times`` ``(items, H)``
    datetime64[us]; ``item_ids`` and ``targets`` name the first and last axes; ``freq`` the
    collection's frequency.
    """

    item_ids: tuple[str, ...]
    targets: tuple[str, ...]
    times: np.ndarray
    paths: np.ndarray
    freq: str


def check_forecast_out(out: str | Path, file_format: str = "csv") -> Path:
    """The output folder ``out`` after checking, before any work, that the files can be
    written there: not an existing file, none of the output files present (never overwritten),
    and a parquet engine installed for ``file_format="parquet"``."""
    out = Path(out)
    if file_format not in FORECAST_FORMATS:
        raise ValueError(f"format {file_format!r} is not one of {', '.join(FORECAST_FORMATS)}")
    if file_format == "parquet" and not any(importlib.util.find_spec(engine)
                                            for engine in ("pyarrow", "fastparquet")):
        raise ValueError("--format parquet needs pyarrow or fastparquet, and neither is "
                         "installed; pip install pyarrow, or write csv")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder")
    names = [f"forecasts.{file_format}", *OUTPUT_FILES[1:]]
    present = [name for name in names if (out / name).exists()]
    if present:
        raise ValueError(f"--out {out} already holds {', '.join(present)}; choose another "
                         "folder or delete them")
    return out


@torch.no_grad()
def forecast_future(
    flow: Flow,
    cfg: Config,
    collection: SeriesCollection,
    horizon: int,
    num_samples: int,
    seed: int = 0,
    global_ids: np.ndarray | None = None,
    max_batch: int = 4096,
) -> FutureForecast:
    """``num_samples`` paths of ``horizon`` steps past the end of every series of
    ``collection``.

    ``flow`` and ``cfg`` are a run of the ``series`` source (:func:`load_run`); the collection
    must have the run's frequency (else a one-line refusal naming the collection and both
    frequencies) and every series at least ``cfg.data.context`` steps (else one line naming
    the series). ``global_ids`` ``(items,)``: the series' ids of an item embedding
    (:func:`~seqflow.train.series_data.item_positions`), required exactly when the model has
    one. The noise of series ``i`` ``(N, D, H)`` comes from ``origin_generator(seed, i)``,
    whatever the batching; series are streamed together, up to ``max_batch`` paths a batch.
    """
    for name, value in (("horizon", horizon), ("num_samples", num_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    trained = parse_freq(cfg.data.freq)
    if not same_frequency(collection.frequency, trained):
        raise ValueError(f"{collection.source}: the series have frequency {collection.freq!r}, "
                         f"the model was trained at {cfg.data.freq!r}")
    if (global_ids is None) != (cfg.model.num_global_ids == 0):
        raise ValueError("global_ids are needed exactly when the model has an item embedding "
                         f"(model.num_global_ids={cfg.model.num_global_ids})")
    inputs = future_inputs(collection, cfg.data.context, horizon, cfg.data.scaling)
    if inputs["local"].shape[1] != cfg.model.cond_channels:
        raise ValueError(f"{collection.source}: {inputs['local'].shape[1]} local features, the "
                         f"model reads {cfg.model.cond_channels}")
    items, D = len(collection), collection.num_variables
    per_batch = max(1, max_batch // num_samples)
    was_training = flow.training
    flow.eval()
    out = []
    try:
        for first in range(0, items, per_batch):
            chosen = range(first, min(items, first + per_batch))
            take = torch.as_tensor(list(chosen))
            local = inputs["local"][take].repeat_interleave(num_samples, dim=0)
            context = local
            if global_ids is not None:
                ids = torch.as_tensor(global_ids[list(chosen)], dtype=torch.long)
                context = SequenceContext(local, ids.repeat_interleave(num_samples))
            noise = torch.cat([torch.randn(num_samples, D, horizon,
                                           generator=origin_generator(seed, i)) for i in chosen])
            history = inputs["history"][take].repeat_interleave(num_samples, dim=0)
            paths = stream_continuations(flow, history, context, noise).double().cpu()
            paths = paths.reshape(len(chosen), num_samples, D, horizon)
            scale = inputs["scale"][take].double()[:, None, :, None]
            loc = inputs["loc"][take].double()[:, None, :, None]
            out.append((paths * scale + loc).permute(0, 1, 3, 2).numpy())
    finally:
        flow.train(was_training)
    paths = np.concatenate(out)
    bad = ~np.isfinite(paths).reshape(items, -1).all(axis=1)
    if bad.any():
        raise ValueError(f"{collection.source}: the forecaster produced non-finite paths for "
                         f"series {collection.item_ids[int(np.flatnonzero(bad)[0])]!r}")
    return FutureForecast(collection.item_ids, collection.targets, inputs["times"], paths,
                          collection.freq)


def _timestamps(times: np.ndarray) -> np.ndarray:
    """ISO strings: dates when every timestamp is a midnight, else to the second."""
    times = times.astype("datetime64[us]")
    days = times.astype("datetime64[D]")
    unit = "D" if (days == times).all() else "s"
    return np.datetime_as_string(times, unit=unit)


def forecast_table(forecast: FutureForecast) -> dict[str, np.ndarray]:
    """Columns of the long-format table: ``item_id``, ``timestamp``, ``target`` (several
    variables only), ``mean``, ``median``, ``q0.1`` ... ``q0.9``; one row per series, step
    and variable, in that order."""
    S, _, H, D = forecast.paths.shape
    quantiles = np.quantile(forecast.paths, QUANTILES, axis=1)  # (Q, S, H, D)
    columns = {"item_id": np.repeat(np.array(forecast.item_ids, dtype=object), H * D),
               "timestamp": np.repeat(_timestamps(forecast.times).reshape(-1), D)}
    if D > 1:
        columns["target"] = np.tile(np.array(forecast.targets, dtype=object), S * H)
    columns["mean"] = forecast.paths.mean(axis=1).reshape(-1)
    columns["median"] = np.median(forecast.paths, axis=1).reshape(-1)
    for q, values in zip(QUANTILES, quantiles, strict=True):
        columns[f"q{q:g}"] = values.reshape(-1)
    return columns


def write_forecast_table(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write the table as CSV (numbers with 8 significant digits) or, for ``.parquet``, with
    pandas' parquet engine."""
    if path.suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(columns).to_parquet(path, index=False)
        return
    names = list(columns)
    rows = len(next(iter(columns.values())))
    text = [",".join(names)]
    cells = [[f"{v:.8g}" for v in values] if values.dtype.kind == "f" else [str(v) for v in values]
             for values in columns.values()]
    text += [",".join(cells[j][i] for j in range(len(names))) for i in range(rows)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(text) + "\n")
    tmp.replace(path)


def fan_chart(path: Path, collection: SeriesCollection, forecast: FutureForecast,
              max_series: int = 4, shown: int | None = None) -> None:
    """History, median and 50 % / 90 % bands of the first ``max_series`` series (first
    variable), ``shown`` steps of history (default three horizons)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    count = min(max_series, len(collection))
    H = forecast.paths.shape[2]
    shown = shown or 3 * H
    fig, axes = plt.subplots(count, 1, squeeze=False, figsize=(7, 2.3 * count))
    for i in range(count):
        ax, series = axes[i][0], collection.items[i]
        q = np.quantile(forecast.paths[i, :, :, 0], [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.plot(series.times[-shown:], series.values[-shown:, 0], color="black", lw=1,
                label="history")
        times = forecast.times[i]
        ax.fill_between(times, q[0], q[4], color="C0", alpha=0.2, label="90 %")
        ax.fill_between(times, q[1], q[3], color="C0", alpha=0.4, label="50 %")
        ax.plot(times, q[2], color="C0", lw=1.2, label="median")
        locator = mdates.AutoDateLocator(maxticks=5)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.tick_params(labelsize=7)
        ax.set_title(f"{forecast.item_ids[i]} ({forecast.targets[0]})", fontsize=8)
    axes[0][0].legend(fontsize=6, loc="upper left")
    with warnings.catch_warnings():  # the date locator warns about short yearly ranges
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def forecast_run(run_dir: str | Path, data: str | Path, horizon: int | None, num_samples: int,
                 out: str | Path, seed: int = 0, weights: str = "auto",
                 file_format: str = "csv") -> dict:
    """Forecast every series of ``data`` past its end with the run ``run_dir`` and write the
    files of the module docstring into ``out`` (checked first, :func:`check_forecast_out`).

    ``data`` is read with the run's column settings and its own inferred frequency, which
    must be the run's. ``horizon`` None: the run's ``data.horizon``; another horizon is
    allowed (the model continues step by step) and noted. Returns the ``forecast.json``
    record.
    """
    out = check_forecast_out(out, file_format)
    flow, cfg, info = load_run(run_dir, weights)
    if cfg.data.source != "series":
        raise ValueError(f"{run_dir} was trained on data.source {cfg.data.source!r}; seqflow "
                         "forecast needs a run of the 'series' source")
    collection = read_configured(replace(cfg.data, freq=""), data)
    horizon = cfg.data.horizon if horizon is None else horizon
    ids = item_positions(run_dir, collection) if cfg.data.item_ids else None
    forecast = forecast_future(flow, cfg, collection, horizon, num_samples, seed, ids)
    notes = list(collection.notes)
    if horizon != cfg.data.horizon:
        notes.append(f"horizon {horizon} differs from the training horizon {cfg.data.horizon}")
    out.mkdir(parents=True, exist_ok=True)
    table = out / f"forecasts.{file_format}"
    write_forecast_table(forecast_table(forecast), table)
    np.save(out / "paths.npy", forecast.paths.astype(np.float32))
    fan_chart(out / "fan_chart.png", collection, forecast)
    record = {
        "run": str(Path(run_dir).resolve()), "weights": info["weights"], "step": info.get("step"),
        "data": str(Path(data).resolve()), "freq": collection.freq, "context": cfg.data.context,
        "horizon": horizon, "num_samples": num_samples, "seed": seed,
        "targets": list(collection.targets), "item_ids": list(collection.item_ids),
        "table": table.name, "quantiles": list(QUANTILES),
        "paths": {"file": "paths.npy", "axes": ["item", "sample", "step", "variable"],
                  "shape": list(forecast.paths.shape)},
        "notes": notes,
    }
    write_json_atomic(record, out / "forecast.json")
    return record
