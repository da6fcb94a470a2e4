"""Forecasting baselines: sample shapes, no look-ahead, and known processes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from seqflow.data.timeseries import backtest_windows, series_from_array

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "timeseries"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"timeseries_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


baselines = load("baselines")
CLASSICAL = ["seasonal_naive", "ets", "arima"]
PATTERN = np.array([3.0, 5.0, 9.0, 4.0, 1.0, 0.0, 2.0, 6.0, 8.0, 7.0, 5.5, 2.5])


def seasonal(T: int = 72, D: int = 2, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    trend = 0.05 * np.arange(T)[:, None]
    return np.tile(PATTERN, T // 12 + 1)[:T, None] * np.arange(1, D + 1) + trend + noise * (
        rng.normal(size=(T, D))
    )


def run(name, values, origins, H=6, N=16, **kw):
    series = series_from_array(values, "2000-01-01", "MS")
    return baselines.BASELINES[name](series, origins, H, N, **kw)


@pytest.mark.parametrize("name", CLASSICAL)
def test_shapes_and_finiteness(name):
    values = seasonal()
    origins = backtest_windows(len(values), context=24, horizon=6, origins=2)
    samples = run(name, values, origins)
    assert samples.shape == (2, 16, 6, 2) and np.isfinite(samples).all()
    # the two variables differ in amplitude: forecasts must not mix them up
    assert np.median(samples[..., 1]) > np.median(samples[..., 0])


@pytest.mark.parametrize("name", CLASSICAL)
def test_nothing_at_or_after_an_origin_is_used(name):
    values = seasonal()
    origins = backtest_windows(len(values), context=24, horizon=6, origins=2)
    clean = run(name, values, origins)
    spiked = values.copy()
    spiked[origins[0], 0] = 1e4  # first step of origin 0's horizon, context of origin 1
    spiked[origins[0] + 3, 1] = -1e4
    dirty = run(name, spiked, origins)
    np.testing.assert_allclose(dirty[0], clean[0], rtol=1e-9, atol=1e-9)
    # origin 1 sees the spike: the test would notice a forecast that ignored recent data
    assert not np.allclose(dirty[1], clean[1])


def test_seasonal_naive_is_exact_on_a_periodic_series():
    values = np.tile(PATTERN, 8)[:, None] * [1.0, -2.0]
    origins = backtest_windows(len(values), context=12, horizon=18, origins=3)
    samples = run("seasonal_naive", values, origins, H=18, N=8)
    truth = np.stack([values[o : o + 18] for o in origins])  # (K, H, D)
    assert np.abs(samples - truth[:, None]).max() < 1e-12


@pytest.mark.parametrize("name, kwargs", [
    ("seasonal_naive", {"season": 1}),
    ("ets", {"season": 1, "trend": False}),
    ("arima", {"season": 1}),
])  # fmt: skip
def test_random_walk_forecast_spread_grows_like_sqrt_h(name, kwargs):
    # y_t = y_{t-1} + e_t, e_t ~ N(0, 1): the h-step predictive law is N(y_origin, h)
    rng = np.random.default_rng(1)
    values = 50 + np.cumsum(rng.normal(size=1000))
    origin = 1000
    samples = run(name, values, [origin], H=9, N=4000, **kwargs)[0, :, :, 0]  # (N, H)
    for h in (1, 4, 9):
        std = samples[:, h - 1].std()
        assert std == pytest.approx(np.sqrt(h), rel=0.15), (h, std)
        assert abs(samples[:, h - 1].mean() - values[-1]) < 0.5 * np.sqrt(h)


def test_missing_history_values_are_tolerated():
    values = seasonal()
    values[[5, 30, 31, 45], 0] = np.nan
    origins = backtest_windows(len(values), context=24, horizon=6, origins=2)
    for name in CLASSICAL:
        assert np.isfinite(run(name, values, origins)).all(), name


def test_integration_inverts_seasonal_differencing():
    rng = np.random.default_rng(2)
    y = rng.normal(size=40).cumsum()
    poly = baselines._difference_polynomial(1, 1, 4)  # (1 - B)(1 - B^4)
    np.testing.assert_array_equal(poly, [1, -1, 0, 0, -1, 1])
    w = y[5:] - y[4:-1] - y[1:-4] + y[:-5]  # w_t for t = 5 .. 39
    origin = 30
    levels = baselines._integrate(w[None, origin - 5 :], y[:origin], poly)
    np.testing.assert_allclose(levels[0], y[origin:], rtol=1e-12)


def test_deepar_is_skipped_with_a_clear_message_without_gluonts():
    try:
        import gluonts  # noqa: F401
    except ImportError:
        with pytest.raises(baselines.BaselineUnavailable, match="gluonts is not installed"):
            run("deepar", seasonal(), [60], H=6, N=4)
    else:
        pytest.skip("gluonts is installed; the skip path does not apply")


def test_cli_reads_the_manifest_and_reports_each_baseline(tmp_path, capsys):
    values = np.tile(PATTERN, 6)
    dates = [f"{2000 + i // 12}-{i % 12 + 1:02d}-01" for i in range(len(values))]
    lines = ["date,y"] + [f"{d},{v}" for d, v in zip(dates, values, strict=True)]
    (tmp_path / "toy.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"toy": {"file": "toy.csv", "time_column": "date", "targets": ["y"], "freq": "MS"}}
    ))
    records = baselines.main([
        "--data", str(tmp_path), "--series", "toy", "--context", "24", "--horizon", "6",
        "--origins", "2", "--num-samples", "5", "--baselines", "seasonal_naive", "deepar",
        "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    assert [r["baseline"] for r in records] == ["seasonal_naive"]
    assert records[0]["median_mae"] < 1e-12 and records[0]["shape"] == [2, 5, 6, 1]
    saved = np.load(tmp_path / "out" / "toy" / "seasonal_naive.npz")
    assert saved["samples"].shape == (2, 5, 6, 1)
    np.testing.assert_array_equal(saved["origins"], [60, 66])
