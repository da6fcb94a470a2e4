"""Classical forecasting baselines that return sample paths ``(K, N, H, D)``.

Every baseline takes a :class:`seqflow.data.timeseries.Series`, the ``K`` forecast origins
(from :func:`seqflow.data.timeseries.backtest_windows`), the horizon ``H`` and the number of
sample paths ``N``, and returns ``samples[k, n, h, d]``: path ``n`` of variable ``d`` at step
``origins[k] + h``. Nothing at or after an origin is used for that origin's forecast.
Multivariate series are forecast one variable at a time (independent univariate models).

- ``seasonal_naive``: ``y[t] = y[t - m] + e`` simulated recursively, ``e`` drawn with
  replacement from the in-sample seasonal differences ``y[t] - y[t - m]`` (both observed, before
  the origin; not centered, so a drift stays in). Missing history values are forward filled.
- ``ets``: statsmodels ``ETSModel`` with additive errors, additive trend (damped by default) and
  additive seasonality of period ``m`` when ``m > 1``; sample paths from ``simulate`` with
  Gaussian errors whose variance is the training fit's residual variance. Missing values are
  forward filled (then backward filled at the start).
- ``arima``: statsmodels ``SARIMAX`` with ``order=(1, 1, 1)`` and, when ``m > 1``,
  ``seasonal_order=(0, 1, 1, m)``, no constant, differencing applied before the ARMA part
  (``simple_differencing``); sample paths from ``simulate`` (initial state drawn from its
  predictive distribution at the origin, Gaussian shocks after it), integrated back to levels.
  Missing values are handled by the Kalman filter; the levels before the origin onto which
  the simulated differences are integrated are forward filled.
- ``deepar`` (optional): GluonTS's torch DeepAR, one global model over the variables, trained
  on the training part; unavailable unless ``gluonts`` is installed.

``ets`` and ``arima`` estimate their parameters once per variable on the training part (steps
before the first origin; only the last ``fit_window`` of them when given) and then run the
filter with those parameters forward over the later data, so that the state at each origin has
seen exactly the steps before it (statsmodels ``smooth`` with the fitted initial states, and
``SARIMAXResults.apply``). The season ``m`` defaults to :data:`SEASONS` of the series'
frequency unit.

    python recipes/timeseries/baselines.py --data data/timeseries --series co2 \\
        --context 104 --horizon 52 --origins 3 --num-samples 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from seqflow.data.timeseries import (
    Series,
    backtest_windows,
    fill_missing,
    parse_freq,
    read_series_csv,
)

# Season length per frequency unit; weekly uses 52 (a year is 52.18 weeks, so the weekly
# season drifts by about one week in six years).
SEASONS = {"min": 60, "h": 24, "D": 7, "W": 52, "M": 12, "Q": 4, "Y": 1}


class BaselineUnavailable(RuntimeError):
    """An optional baseline whose package is not installed."""


def default_season(series: Series) -> int:
    """Season length ``m`` for the series' frequency (hourly 24, weekly 52, monthly 12, ...)."""
    return SEASONS[parse_freq(series.freq).unit]


def _check(series: Series, origins, horizon: int, num_samples: int) -> np.ndarray:
    origins = np.asarray(origins, dtype=np.int64).reshape(-1)
    if len(origins) == 0 or (origins < 1).any() or (origins > series.length).any():
        raise ValueError(
            f"{series.source}: origins {origins.tolist()} must lie in [1, T={series.length}]"
        )
    for name, value in (("horizon", horizon), ("num_samples", num_samples)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return origins


def _fit_start(first_origin: int, fit_window: int | None) -> int:
    if fit_window is None:
        return 0
    if fit_window < 1:
        raise ValueError(f"fit_window must be a positive integer, got {fit_window!r}")
    return max(0, first_origin - fit_window)


def _rng(seed: int, k: int, d: int) -> np.random.Generator:
    return np.random.default_rng([seed, k, d])


def _finite(samples: np.ndarray, name: str, series: Series) -> np.ndarray:
    if not np.isfinite(samples).all():
        raise ValueError(f"{series.source}: {name} produced non-finite sample paths")
    return samples


def seasonal_naive(
    series: Series,
    origins: Sequence[int],
    horizon: int,
    num_samples: int,
    season: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Seasonal naive paths with bootstrapped in-sample seasonal differences, ``(K, N, H, D)``."""
    origins = _check(series, origins, horizon, num_samples)
    m = default_season(series) if season is None else int(season)
    out = np.empty((len(origins), num_samples, horizon, series.num_variables))
    for k, origin in enumerate(origins):
        if origin <= m:
            raise ValueError(f"{series.source}: origin {origin} leaves no seasonal difference "
                             f"with season {m}")
        past, seen = series.values[:origin], series.observed[:origin]
        filled = fill_missing(past, seen, f"{series.source} before step {origin}")
        for d in range(series.num_variables):
            both = seen[m:, d] & seen[:-m, d]
            residuals = (past[m:, d] - past[:-m, d])[both].astype(np.float64)
            if len(residuals) == 0:
                raise ValueError(f"{series.source}: variable {series.targets[d]!r} has no "
                                 f"observed seasonal difference before step {origin}")
            draws = _rng(seed, k, d).choice(residuals, size=(num_samples, horizon))
            path = np.concatenate(
                [np.broadcast_to(filled[origin - m : origin, d], (num_samples, m)), draws], axis=1
            ).astype(np.float64)
            for h in range(horizon):
                path[:, m + h] += path[:, h]
            out[k, :, :, d] = path[:, m:]
    return _finite(out, "seasonal_naive", series)


def ets(
    series: Series,
    origins: Sequence[int],
    horizon: int,
    num_samples: int,
    season: int | None = None,
    trend: bool = True,
    damped: bool = True,
    seed: int = 0,
    fit_window: int | None = None,
) -> np.ndarray:
    """ETS(A, Ad, A) sample paths ``(K, N, H, D)`` (trend and seasonality as configured).

    Initial states: statsmodels' heuristic when seasonal, estimated otherwise.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    origins = _check(series, origins, horizon, num_samples)
    m = default_season(series) if season is None else int(season)
    start = _fit_start(int(origins.min()), fit_window)
    first, last = int(origins.min()), int(origins.max())
    spec = {
        "error": "add",
        "trend": "add" if trend else None,
        "damped_trend": bool(trend and damped),
        "seasonal": "add" if m > 1 else None,
        "seasonal_periods": m if m > 1 else None,
    }
    if m > 1 and first - start < 2 * m + 1:
        raise ValueError(f"{series.source}: ets needs more than two seasons (2 x {m}) before the "
                         f"first origin {first}, has {first - start}")
    filled = fill_missing(
        series.values[start:last], series.observed[start:last], f"{series.source} (ets)"
    ).astype(np.float64)
    out = np.empty((len(origins), num_samples, horizon, series.num_variables))
    for d in range(series.num_variables):
        # one BLAS thread: the matrices are small and threads only contend on shared cores
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            init = "heuristic" if m > 1 else "estimated"
            fitted = ETSModel(filled[: first - start, d], initialization_method=init, **spec).fit(
                disp=False
            )
            known = {"initial_level": fitted.initial_level}
            if trend:
                known["initial_trend"] = fitted.initial_trend
            if m > 1:
                known["initial_seasonal"] = fitted.initial_seasonal
            model = ETSModel(filled[:, d], initialization_method="known", **known, **spec)
            by_name = dict(zip(fitted.param_names, np.asarray(fitted.params), strict=True))
            result = model.smooth(np.array([by_name[name] for name in model.param_names]))
            sigma = float(np.sqrt(fitted.scale))  # training residuals only
            for k, origin in enumerate(origins):
                # The errors are drawn here: statsmodels' default takes their variance from the
                # residuals of every step filtered, the steps after the origin included.
                errors = _rng(seed, k, d).standard_normal((horizon, num_samples)) * sigma
                # statsmodels' ETS anchor is the last observation before the first simulated one
                paths = result.simulate(
                    horizon, anchor=int(origin) - start - 1, repetitions=num_samples,
                    random_errors=errors,
                )  # fmt: skip
                out[k, :, :, d] = np.asarray(paths).reshape(horizon, num_samples).T
    return _finite(out, "ets", series)


def _difference_polynomial(d: int, D: int, m: int) -> np.ndarray:
    """Coefficients ``a`` of ``(1 - B)^d (1 - B^m)^D = sum_j a_j B^j`` (``a_0 = 1``)."""
    poly = np.array([1.0])
    for factor in [np.r_[1.0, -1.0]] * d + [np.r_[1.0, np.zeros(m - 1), -1.0]] * D:
        poly = np.convolve(poly, factor)
    return poly


def _integrate(differences: np.ndarray, history: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Levels ``(N, H)`` from simulated differences ``(N, H)`` and the levels before them:
    ``y_t = w_t - sum_{j >= 1} a_j y_{t-j}``."""
    lags = len(poly) - 1
    N, H = differences.shape
    path = np.concatenate([np.broadcast_to(history[len(history) - lags :], (N, lags)),
                           differences], axis=1)  # fmt: skip
    for h in range(H):
        t = lags + h
        path[:, t] -= path[:, t - lags : t][:, ::-1] @ poly[1:]
    return path[:, lags:]


def arima(
    series: Series,
    origins: Sequence[int],
    horizon: int,
    num_samples: int,
    season: int | None = None,
    order: tuple[int, int, int] = (1, 1, 1),
    seasonal_order: tuple[int, int, int] = (0, 1, 1),
    seed: int = 0,
    fit_window: int | None = None,
) -> np.ndarray:
    """SARIMAX ``order`` x ``seasonal_order`` (period ``m``) sample paths ``(K, N, H, D)``.

    The differencing is applied to the data before the state-space model
    (``simple_differencing=True``: the ARMA state is small, which makes seasonal models with
    ``m = 52`` an order of magnitude faster); simulated differences are integrated back onto
    the levels before the origin (missing ones forward filled).
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    origins = _check(series, origins, horizon, num_samples)
    m = default_season(series) if season is None else int(season)
    start = _fit_start(int(origins.min()), fit_window)
    first, last = int(origins.min()), int(origins.max())
    seasonal = (*seasonal_order, m) if m > 1 else (0, 0, 0, 0)
    poly = _difference_polynomial(order[1], seasonal[1], m)
    lost = len(poly) - 1  # steps consumed by the differencing
    if first - start <= lost + sum(order) + sum(seasonal[:3]):
        raise ValueError(f"{series.source}: arima needs more than {lost} steps before the first "
                         f"origin {first} to difference, has {first - start}")
    values = series.values[start:last].astype(np.float64)  # NaN where missing
    levels = fill_missing(values, series.observed[start:last], f"{series.source} (arima)")
    out = np.empty((len(origins), num_samples, horizon, series.num_variables))
    for d in range(series.num_variables):
        # one BLAS thread: the matrices are small and threads only contend on shared cores
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            fitted = SARIMAX(
                values[: first - start, d], order=order, seasonal_order=seasonal,
                simple_differencing=True,
            ).fit(disp=False)  # fmt: skip
            result = fitted.apply(values[:, d])
            for k, origin in enumerate(origins):
                # the state-space anchor is the first simulated step, counted in differences
                differences = result.simulate(
                    horizon, anchor=int(origin) - start - lost, repetitions=num_samples,
                    rng=_rng(seed, k, d),
                )  # fmt: skip
                differences = np.asarray(differences).reshape(horizon, num_samples).T
                history = levels[: int(origin) - start, d]
                out[k, :, :, d] = _integrate(differences, history, poly)
    return _finite(out, "arima", series)


def _gluonts_freq(series: Series) -> str:
    f = parse_freq(series.freq)
    prefix = str(f.n) if f.n > 1 else ""
    if f.unit == "W":
        weekday = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
        return f"{prefix}W-{weekday[series.times[0].astype(object).weekday()]}"
    return prefix + f.unit


def deepar(
    series: Series,
    origins: Sequence[int],
    horizon: int,
    num_samples: int,
    context: int | None = None,
    epochs: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """GluonTS DeepAR (torch) sample paths ``(K, N, H, D)``; needs ``gluonts[torch]``.

    One model over all variables (each one a training series), trained on the steps before the
    first origin; forecasts from each origin condition on the steps before it.
    """
    try:
        import pandas as pd
        import torch
        from gluonts.dataset.common import ListDataset
        from gluonts.torch.model.deepar import DeepAREstimator
    except ImportError:
        raise BaselineUnavailable(
            "deepar skipped: gluonts is not installed (pip install 'gluonts[torch]')"
        ) from None

    origins = _check(series, origins, horizon, num_samples)
    freq = _gluonts_freq(series)
    start = pd.Period(series.times[0].astype("datetime64[s]").astype(object), freq=freq)

    def dataset(end: int) -> ListDataset:
        rows = [{"start": start, "target": series.values[:end, d].astype(np.float32)}
                for d in range(series.num_variables)]  # fmt: skip
        return ListDataset(rows, freq=freq)

    torch.manual_seed(seed)
    np.random.seed(seed)  # GluonTS's instance samplers draw from numpy's global generator
    with tempfile.TemporaryDirectory() as checkpoints:  # GluonTS keeps its best checkpoint here
        estimator = DeepAREstimator(
            freq=freq, prediction_length=horizon, context_length=context or 2 * horizon,
            num_parallel_samples=num_samples,
            trainer_kwargs={"max_epochs": epochs, "enable_progress_bar": False, "logger": False,
                            "default_root_dir": checkpoints},
        )  # fmt: skip
        predictor = estimator.train(dataset(int(origins.min())))
    out = np.empty((len(origins), num_samples, horizon, series.num_variables))
    for k, origin in enumerate(origins):
        for d, forecast in enumerate(predictor.predict(dataset(int(origin)))):
            out[k, :, :, d] = forecast.samples
    return _finite(out, "deepar", series)


BASELINES = {"seasonal_naive": seasonal_naive, "ets": ets, "arima": arima, "deepar": deepar}


def median_abs_error(samples: np.ndarray, series: Series, origins: np.ndarray) -> float:
    """Mean absolute error of the per-step sample median over observed test entries."""
    H = samples.shape[2]
    truth = np.stack([series.values[o : o + H] for o in origins])  # (K, H, D)
    seen = np.stack([series.observed[o : o + H] for o in origins])
    return float(np.abs(np.median(samples, axis=1) - truth)[seen].mean())


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/timeseries"))
    parser.add_argument("--series", required=True, help="a name in DATA/manifest.json")
    parser.add_argument("--context", type=int, required=True)
    parser.add_argument("--horizon", type=int, required=True)
    parser.add_argument("--origins", type=int, required=True)
    parser.add_argument("--num-samples", type=int, default=100, metavar="N")
    parser.add_argument("--baselines", nargs="+", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--fit-window", type=int, default=None,
                        help="ets/arima: estimate on the last steps before the first origin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write OUT/<series>/<name>.npz")
    args = parser.parse_args(argv)

    manifest_path = args.data / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"baselines.py: {manifest_path} is missing; run prepare.py first")
    manifest = json.loads(manifest_path.read_text())
    if args.series not in manifest:
        raise SystemExit(f"baselines.py: {args.series!r} is not in {manifest_path}; "
                         f"choose from {', '.join(manifest)}")
    entry = manifest[args.series]
    series = read_series_csv(args.data / entry["file"], entry["time_column"], entry["targets"],
                             entry["freq"])  # fmt: skip
    origins = backtest_windows(series.length, args.context, args.horizon, args.origins)
    results = []
    for name in args.baselines:
        kwargs = {"seed": args.seed}
        if name in ("ets", "arima"):
            kwargs["fit_window"] = args.fit_window
        began = time.perf_counter()
        try:
            samples = BASELINES[name](series, origins, args.horizon, args.num_samples, **kwargs)
        except BaselineUnavailable as skipped:
            print(skipped, flush=True)
            continue
        record = {
            "series": args.series, "baseline": name, "shape": list(samples.shape),
            "median_mae": median_abs_error(samples, series, origins),
            "seconds": round(time.perf_counter() - began, 2),
        }  # fmt: skip
        if args.out is not None:
            folder = args.out / args.series
            folder.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(folder / f"{name}.npz", samples=samples.astype(np.float32),
                                origins=origins)  # fmt: skip
        print(json.dumps(record), flush=True)
        results.append(record)
    return results


if __name__ == "__main__":
    main()
