"""The series data source trains through the engine; seqflow forecast continues every series."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from seqflow.cli import main
from seqflow.train import ConfigError, config_from_dict, load_config, train
from seqflow.train.datasets import build_splits, derive_config

CONFIG = Path(__file__).resolve().parents[2] / "recipes" / "timeseries" / "configs" / "global.yaml"


def _long_csv(path: Path, lengths=(60, 45, 80), starts=("2021-01-01", "2021-02-10", "2020-12-01"),
              hourly: bool = False) -> Path:
    rng = np.random.default_rng(0)
    rows = ["item_id,timestamp,target"]
    for i, (T, start) in enumerate(zip(lengths, starts, strict=True)):
        step = np.timedelta64(1, "h") if hourly else np.timedelta64(1, "D")
        times = np.datetime64(start, "s") + step * np.arange(T)
        for t in range(T):
            value = "" if rng.random() < 0.05 else f"{10 + i + np.sin(t):.4f}"
            rows.append(f"s{i},{str(times[t]).replace('T', ' ')},{value}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _cfg(path: Path, **data):
    raw = {"data": {"source": "series", "path": str(path), "horizon": 4, "num_windows": 32,
                    **data},
           "model": {"kind": "sequence_maf", "conditioner": "lstm", "steps": 1,
                     "hidden_features": 8, "head_features": 8},
           "train": {"task": "masked_likelihood", "max_steps": 2, "batch_size": 8,
                     "eval_every": 2, "checkpoint_every": 2, "log_with": "none",
                     "progress": False, "cpu_threads": 1}}
    return config_from_dict(raw)


def test_derived_config_and_splits(tmp_path) -> None:
    data = _long_csv(tmp_path / "long.csv")
    cfg = derive_config(_cfg(data, item_ids=True))
    # daily: day-of-week and day-of-year sin/cos, plus one observed flag
    assert (cfg.data.freq, cfg.data.season, cfg.data.context) == ("D", 7, 8)
    assert (cfg.model.channels, cfg.model.cond_channels, cfg.model.num_global_ids) == (1, 5, 3)
    splits = build_splits(cfg, run_dir=tmp_path / "run")
    assert len(splits["train"]) == 32 and len(splits["val"]) == 3 and len(splits["test"]) == 0
    batch = splits["train"].__getitems__([0, 1, 2])
    assert batch["x"].shape == (3, 1, 12) and batch["context"].local.shape == (3, 5, 12)
    summary = json.loads((tmp_path / "run" / "series.json").read_text())
    assert [item["item_id"] for item in summary["items"]] == ["s0", "s1", "s2"]
    recommended = derive_config(load_config(CONFIG, [f"data.path={data}", "data.horizon=6"]))
    assert (recommended.data.context, recommended.model.cond_channels) == (12, 5)
    with pytest.raises(ConfigError, match=r"model.channels=2 contradicts"):
        derive_config(config_from_dict({**_raw(data), "model": {**_raw(data)["model"],
                                                               "channels": 2}}))


def _raw(path: Path) -> dict:
    cfg = _cfg(path)
    return {"data": {"source": "series", "path": str(path), "horizon": cfg.data.horizon},
            "model": {"kind": "sequence_maf", "conditioner": "lstm"},
            "train": {"task": "masked_likelihood"}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("series_run")
    data = _long_csv(root / "long.csv")
    result = train(_cfg(data, item_ids=True), root / "run")
    assert result.step == 2
    return root / "run", data


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_forecast_writes_the_files_with_continuing_timestamps(trained, tmp_path, capsys) -> None:
    run, data = trained
    out = tmp_path / "fc"
    assert main(["forecast", str(run), "--data", str(data), "--horizon", "5",
                 "--num-samples", "20", "--out", str(out)]) == 0
    rows = _rows(out / "forecasts.csv")
    assert list(rows[0]) == ["item_id", "timestamp", "mean", "median",
                             *[f"q0.{k}" for k in range(1, 10)]]
    assert [r["timestamp"] for r in rows if r["item_id"] == "s1"] == [
        "2021-03-27", "2021-03-28", "2021-03-29", "2021-03-30", "2021-03-31"]  # s1 ends 03-26
    paths = np.load(out / "paths.npy")
    assert paths.shape == (3, 20, 5, 1)
    first = [float(r["q0.5"]) for r in rows if r["item_id"] == "s0"]
    np.testing.assert_allclose(first, np.quantile(paths[0, :, :, 0], 0.5, axis=0), rtol=1e-6)
    quantiles = np.array([[float(r[f"q0.{k}"]) for k in range(1, 10)] for r in rows])
    assert (np.diff(quantiles, axis=1) >= 0).all()
    assert (out / "fan_chart.png").stat().st_size > 0
    record = json.loads((out / "forecast.json").read_text())
    assert record["paths"]["axes"] == ["item", "sample", "step", "variable"]
    assert any("differs from the training horizon 4" in note for note in record["notes"])
    # the same seed draws the same paths; an existing output is never overwritten
    assert main(["forecast", str(run), "--data", str(data), "--horizon", "5",
                 "--num-samples", "20", "--out", str(out)]) == 2
    assert "already holds forecasts.csv" in capsys.readouterr().err


def test_forecast_writes_parquet_equal_to_its_csv(trained, tmp_path) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd

    run, data = trained
    for fmt in ("csv", "parquet"):
        assert main(["forecast", str(run), "--data", str(data), "--num-samples", "20",
                     "--format", fmt, "--out", str(tmp_path / fmt)]) == 0
    csv = pd.read_csv(tmp_path / "csv" / "forecasts.csv")
    parquet = pd.read_parquet(tmp_path / "parquet" / "forecasts.parquet")
    assert list(parquet.columns) == list(csv.columns)
    np.testing.assert_allclose(parquet["q0.5"].to_numpy(), csv["q0.5"].to_numpy(), rtol=1e-6)
    assert [str(t)[:10] for t in parquet["timestamp"]] == list(csv["timestamp"])


def test_forecast_refuses_short_history_and_another_frequency(trained, tmp_path, capsys) -> None:
    run, _ = trained
    short = _long_csv(tmp_path / "short.csv", lengths=(60, 5, 80))
    assert main(["forecast", str(run), "--data", str(short), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "item 's1' has 5 steps, shorter than the model's context of 8" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "a" / "forecasts.csv").exists()
    hourly = _long_csv(tmp_path / "hourly.csv", hourly=True)
    assert main(["forecast", str(run), "--data", str(hourly), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "frequency 'h', the model was trained at 'D'" in err and len(err.splitlines()) == 1
    other = _long_csv(tmp_path / "other.csv", lengths=(60,), starts=("2021-01-01",))
    other.write_text(other.read_text().replace("s0,", "z9,"))
    assert main(["forecast", str(run), "--data", str(other), "--out", str(tmp_path / "c")]) == 2
    assert "item 'z9' was not among the 3 items" in capsys.readouterr().err
