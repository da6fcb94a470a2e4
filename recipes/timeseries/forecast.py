"""Rolling-origin backtest of a sequence-MAF forecaster against classical baselines.

    python recipes/timeseries/forecast.py --csv data/timeseries/sunspots.csv \\
        --time-column date --target sunactivity --context 60 --horizon 11 \\
        --origins 10 --num-samples 200 --out runs/sunspots-lstm

The protocol (:func:`seqflow.data.timeseries.backtest_windows`): the last ``K * H``
observations form ``K`` non-overlapping test windows; the forecaster is trained only on the
steps before the first origin (its last ``val_origins * H`` steps are the validation
horizons); at each origin it sees the ``C`` steps before it, primes its streaming state with
them and draws ``N`` paths of ``H`` steps in one batch. The baselines of
``recipes/timeseries/baselines.py`` forecast the same origins from the same history.

Writes into ``--out``:

- ``forecasts.npy`` ``(K, N, H, D)``: the forecaster's paths in the series' units;
- ``targets.npy`` ``(K, H, D)``: the truth, NaN where missing;
- ``baselines/<name>.npy`` ``(K, N, H, D)``: each baseline's paths;
- ``metrics.json``: settings, and per model the headline ``variable_averaged_crps`` (each
  variable's CRPS normalized by its own sum of ``|target|``, averaged over the variables) with
  ``crps_per_variable``, seasonal MASE of the median, 50 % / 90 % interval coverage; for a
  multivariate series CRPS-sum and energy score beside the headline and the pooled CRPS
  labelled ``crps_mixed_units`` / ``normalized_crps_mixed_units``; for a univariate one
  ``crps`` (series units) and ``normalized_crps``; training and sampling seconds (see
  :func:`score`);
- ``fan_chart.png``: median, 50 % and 90 % bands and the truth at a few origins;
- ``run/``: the engine's run directory (config, checkpoints, best/final weights, log).

``--freq`` is inferred from the timestamps when left out (and printed); a given one that the
timestamps contradict is refused (:func:`seqflow.data.timeseries.read_series_csv`). The
training part before the first validation origin, ``T - (origins + val_origins) x horizon``
steps, must hold one window of ``context + horizon``: ``T >= context + (origins +
val_origins + 1) x horizon`` (:class:`seqflow.data.timeseries.TrainingWindows`).

Without ``--config`` the recipe uses ``configs/lstm.yaml`` beside this script, the LSTM
forecaster: on the development series of ``docs/results/timeseries.md`` it trains 1.5 to 5
times and samples 4.5 to 9 times faster than the WaveNet config, with a lower CRPS on co2 and
elnino and one up to 12 % higher on sunspots and electricity (both swing between seeds on
macrodata). The ``--config`` YAML has the engine's ``model`` and ``train`` sections and a
``windows`` section (``scaling``: ``mean`` or ``standard``; ``val_origins``; ``num_windows``
training windows; ``loss_on``: ``window`` or ``horizon``). ``model.channels`` and
``model.cond_channels`` are set from the data (``D`` targets; calendar features, user
covariates and one observed flag per target), ``model.kind`` is ``sequence_maf`` and
``train.task`` is ``masked_likelihood``. ``--set section.key=value`` overrides any key.
Rerunning with the same ``--out`` resumes or reuses the trained run. ``run/`` records the
CSV's sha256 and every setting that changes what the model is trained on (time column,
targets, covariates, frequency, context, horizon, origins and the ``windows`` section) in
``run/forecast_settings.json``; a rerun into the same ``--out`` with other ones is refused in
one line naming them (choose another ``--out``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from seqflow.data.sources import sha256_file
from seqflow.data.timeseries import (
    SCALINGS,
    SPLITS,
    TrainingWindows,
    backtest_windows,
    read_series_csv,
)
from seqflow.forecasting import LOSS_ON, WindowBatches, backtest_forecasts
from seqflow.metrics.forecast import forecast_metrics
from seqflow.train import (
    Config,
    ConfigError,
    build_flow,
    load_sections,
    load_weights,
    read_config_file,
    reusable_result,
    train,
    write_json_atomic,
)


@dataclass
class WindowSettings:
    """The ``windows`` section: how training windows are cut and scored.

    ``scaling`` (:data:`~seqflow.data.timeseries.SCALINGS`), ``val_origins`` validation
    horizons carved from the end of the training part, ``num_windows`` training windows drawn
    with a seed, ``loss_on`` (:data:`~seqflow.forecasting.LOSS_ON`).
    """

    scaling: str = "window"
    val_origins: int = 2
    num_windows: int = 8192
    loss_on: str = "window"

    def __post_init__(self) -> None:
        for key, choices in (("scaling", SCALINGS), ("loss_on", LOSS_ON)):
            if getattr(self, key) not in choices:
                raise ValueError(f"windows.{key}={getattr(self, key)!r} is not one of "
                                 f"{', '.join(choices)}")
        for key, low in (("val_origins", 0), ("num_windows", 1)):
            if getattr(self, key) < low:
                raise ValueError(f"windows.{key} must be an integer >= {low}, got "
                                 f"{getattr(self, key)!r}")


CLASSICAL = ("seasonal_naive", "ets", "arima")
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "lstm.yaml"
SETTINGS_FILE = "forecast_settings.json"


def _load_baselines():
    """The baselines module beside this script, loaded from its file (a bare ``import
    baselines`` would take whichever module of that name was imported first, such as the
    speech or density recipe's)."""
    name = "seqflow_recipe_timeseries_baselines"
    if name not in sys.modules:
        path = Path(__file__).with_name("baselines.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before exec: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def load_settings(config: Path | None, overrides: list[str], channels: int,
                  cond_channels: int) -> tuple[Config, WindowSettings]:
    """``(engine Config, windows settings)`` from the YAML file and ``--set`` overrides."""
    raw = {}
    if config is not None:
        try:
            raw = read_config_file(config)
        except ConfigError as err:
            raise ValueError(f"--config {err}") from None
    model = raw.setdefault("model", {})
    trainer = raw.setdefault("train", {})
    if model.get("kind", "sequence_maf") != "sequence_maf":
        raise ValueError(f"model.kind={model['kind']!r}: the forecaster is a sequence_maf")
    if trainer.get("task", "masked_likelihood") != "masked_likelihood":
        raise ValueError(f"train.task={trainer['task']!r}: the forecaster trains with "
                         "masked_likelihood")
    model.update(kind="sequence_maf", channels=channels, cond_channels=cond_channels,
                 upsample_factor=1)
    trainer["task"] = "masked_likelihood"
    trainer.setdefault("log_with", "none")
    for key in ("model.channels", "model.cond_channels", "model.kind", "train.task",
                "model.upsample_factor"):
        if any(item.split("=", 1)[0].strip() == key for item in overrides):
            raise ValueError(f"--set {key}: set by the recipe from the data")
    try:
        cfg, sections = load_sections(raw, overrides, {"windows": WindowSettings})
    except ConfigError as err:
        raise ValueError(f"{config or 'config'}: {err}") from None
    return cfg, sections["windows"]


def truth(series, origins: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``(K, H, D)`` (NaN where missing) and their observed mask."""
    values = np.stack([series.values[o : o + horizon] for o in origins]).astype(np.float64)
    observed = np.stack([series.observed[o : o + horizon] for o in origins])
    return values, observed


def histories(series, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Everything before each origin, left-padded to ``(K, max origin, D)``, and its mask."""
    length = int(origins.max())
    values = np.zeros((len(origins), length, series.num_variables))
    seen = np.zeros(values.shape, dtype=bool)
    for k, o in enumerate(origins):
        values[k, length - o :] = np.nan_to_num(series.values[:o])
        seen[k, length - o :] = series.observed[:o]
    return values, seen


def score(samples: np.ndarray, targets: np.ndarray, observed: np.ndarray, history, season: int,
          multivariate: bool) -> dict:
    """The metrics of one model. Headline: ``variable_averaged_crps`` (each variable's CRPS
    normalized by its own sum of ``|target|``, averaged over the variables), with
    ``crps_per_variable`` behind it. A univariate series also gets ``crps`` (in its units) and
    ``normalized_crps`` (equal to the headline); a multivariate one ``crps_sum`` and
    ``energy_score`` beside the headline, and the CRPS pooled over its variables as
    ``crps_mixed_units`` and ``normalized_crps_mixed_units`` (their sums mix the variables'
    units, so the largest variables dominate)."""
    m = forecast_metrics(samples, np.nan_to_num(targets), observed, history[0], season,
                         history[1])
    out = {"variable_averaged_crps": m.variable_averaged_crps,
           "crps_per_variable": list(m.crps_per_variable), "mase": m.mase,
           "coverage_50": m.coverage_50, "coverage_90": m.coverage_90}
    if multivariate:
        out.update(crps_sum=m.crps_sum, energy_score=m.energy_score,
                   crps_mixed_units=m.mean_crps, normalized_crps_mixed_units=m.normalized_crps)
    else:
        out.update(crps=m.mean_crps, normalized_crps=m.normalized_crps)
    return out


def fan_chart(path: Path, series, origins: np.ndarray, samples: np.ndarray, context: int,
              title: str, max_origins: int = 3, max_variables: int = 4) -> None:
    """Median, 50 % and 90 % bands and the truth for up to ``max_origins`` origins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    K, _, H, D = samples.shape
    picks = sorted(set(np.linspace(0, K - 1, min(max_origins, K)).round().astype(int)))
    variables = list(range(min(D, max_variables)))
    fig, axes = plt.subplots(len(variables), len(picks), squeeze=False,
                             figsize=(4.2 * len(picks), 2.6 * len(variables)))
    shown = min(context, 3 * H)
    for col, k in enumerate(picks):
        o = int(origins[k])
        before = slice(o - shown, o)
        after = slice(o, o + H)
        q = np.quantile(samples[k], [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)  # (5, H, D)
        for row, d in enumerate(variables):
            ax = axes[row][col]
            ax.plot(series.times[before], series.values[before, d], color="black", lw=1)
            ax.plot(series.times[after], series.values[after, d], color="black", lw=1,
                    ls="--", label="truth")
            ax.fill_between(series.times[after], q[0, :, d], q[4, :, d], color="C0", alpha=0.2,
                            label="90 %")
            ax.fill_between(series.times[after], q[1, :, d], q[3, :, d], color="C0", alpha=0.4,
                            label="50 %")
            ax.plot(series.times[after], q[2, :, d], color="C0", lw=1.2, label="median")
            ax.axvline(series.times[o], color="grey", lw=0.6)
            locator = mdates.AutoDateLocator(maxticks=4)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(f"origin {k} ({str(series.times[o])[:10]})", fontsize=8)
            if col == 0:
                ax.set_ylabel(series.targets[d], fontsize=8)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle(title, fontsize=9)
    with warnings.catch_warnings():  # the date locator warns about short yearly ranges
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--time-column", required=True)
    p.add_argument("--target", required=True, help="COL[,COL...]")
    p.add_argument("--covariates", default="", help="optional user covariate columns COL[,...]")
    p.add_argument("--freq", default=None,
                   help="pandas alias: h, D, W-SAT, MS, QS, YS, ... (default: inferred from "
                        "the timestamps)")
    p.add_argument("--context", type=int, required=True)
    p.add_argument("--horizon", type=int, required=True)
    p.add_argument("--origins", type=int, required=True)
    p.add_argument("--num-samples", type=int, required=True, metavar="N",
                   help="sample paths per origin (at least 2)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None,
                   help=f"engine and windows YAML (default: {DEFAULT_CONFIG.name} beside this "
                        "script, the LSTM forecaster)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE")
    p.add_argument("--baselines", nargs="*", default=[*CLASSICAL, "deepar"],
                   choices=[*CLASSICAL, "deepar"],
                   help="any of seasonal_naive ets arima deepar (none: no baselines)")
    p.add_argument("--fit-window", type=int, default=None,
                   help="ets/arima: estimate on the last steps before the first origin")
    p.add_argument("--seed", type=int, default=0, help="seed of the forecast noise")
    p.add_argument("--name", default=None, help="label in metrics.json and the chart")
    args = p.parse_args(argv)
    if args.num_samples < 2:
        p.error("--num-samples must be at least 2")
    return args


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot hold the outputs, before any work starts."""
    for path in (out, out / "run", out / "baselines"):
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {out}: {path} exists and is not a folder; choose another "
                             "--out")


def training_settings(csv: Path, series, time_column: str, covariates: list[str],
                      context: int, horizon: int, origins: int,
                      windows: WindowSettings) -> dict:
    """What the trained model depends on besides the engine config (which the engine itself
    compares on resume): the data file's content and how its windows are cut."""
    return {"csv_sha256": sha256_file(csv), "time_column": time_column,
            "targets": list(series.targets), "covariates": covariates, "freq": series.freq,
            "context": context, "horizon": horizon, "origins": origins,
            **{f"windows.{k}": v for k, v in asdict(windows).items()}}


def claim_run(run: Path, settings: dict) -> None:
    """Record ``settings`` in ``run`` or check them against those it holds: a run trained on
    other data or windows is refused in one line (:func:`seqflow.train.reusable_result`)."""
    record = run / SETTINGS_FILE
    try:
        saved = reusable_result(record, settings)
    except ValueError as err:
        raise ValueError(f"--out {run.parent}: {err}") from None
    if saved is None and run.exists() and any(run.iterdir()):
        raise ValueError(f"--out {run.parent}: {run} holds a run without {SETTINGS_FILE}, so "
                         "what it was trained on is unknown; delete it or choose another --out")
    if saved is None:
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic({"settings": settings}, record)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    check_out(args.out)
    config = args.config
    if config is None:
        config = DEFAULT_CONFIG
        print(f"no --config: the LSTM forecaster of {config}", flush=True)
    targets = [c.strip() for c in args.target.split(",") if c.strip()]
    covariates = [c.strip() for c in args.covariates.split(",") if c.strip()]
    series = read_series_csv(args.csv, args.time_column, targets, args.freq, covariates)
    freq_source = "given" if args.freq is not None else "inferred from the timestamps"
    missing = int((~series.observed).sum())
    print(f"{args.csv}: freq {series.freq} ({freq_source}), {series.length} steps, {missing} of "
          f"{series.observed.size} target values missing", flush=True)
    origins = backtest_windows(series.length, args.context, args.horizon, args.origins)
    probe = TrainingWindows(series, args.context, args.horizon, origins=args.origins,
                            split="test", val_origins=0)
    cfg, windows = load_settings(config, args.overrides, series.num_variables,
                                 len(probe.feature_names))
    settings = training_settings(args.csv, series, args.time_column, covariates, args.context,
                                 args.horizon, args.origins, windows)
    common = dict(seed=cfg.train.seed, scaling=windows.scaling, origins=args.origins,
                  val_origins=windows.val_origins)
    split = {name: TrainingWindows(series, args.context, args.horizon, split=name,
                                   num_windows=windows.num_windows if name == "train"
                                   else None, **common)
             for name in SPLITS}
    claim_run(args.out / "run", settings)
    name = args.name or f"seqflow-{cfg.model.conditioner}"

    began = time.perf_counter()
    splits = {"train": WindowBatches(split["train"], windows.loss_on)}
    if windows.val_origins:
        splits["val"] = WindowBatches(split["val"], "horizon")
    result = train(cfg, args.out / "run", splits=splits)
    train_seconds = time.perf_counter() - began
    flow = build_flow(cfg.model)
    info = load_weights(args.out / "run", flow)
    began = time.perf_counter()
    samples = backtest_forecasts(flow, split["test"], args.num_samples, seed=args.seed)
    sample_seconds = time.perf_counter() - began

    values, observed = truth(series, origins, args.horizon)
    np.save(args.out / "forecasts.npy", samples.astype(np.float32))
    np.save(args.out / "targets.npy", values.astype(np.float32))
    baselines = _load_baselines()
    season = baselines.default_season(series)
    past = histories(series, origins)
    multivariate = series.num_variables > 1
    models = {name: {**score(samples, values, observed, past, season, multivariate),
                     "train_seconds": round(train_seconds, 2),
                     "sample_seconds": round(sample_seconds, 2),
                     "train_steps": result.step, "resumed_from": _name(result.resumed_from),
                     "weights": info["weights"],
                     "weights_step": info.get("step")}}
    skipped = {}
    for baseline in args.baselines:
        kwargs = {"seed": args.seed}
        if baseline in ("ets", "arima"):
            kwargs["fit_window"] = args.fit_window
        if baseline == "deepar":
            kwargs["context"] = args.context
        began = time.perf_counter()
        try:
            paths = baselines.BASELINES[baseline](series, origins, args.horizon,
                                                  args.num_samples, **kwargs)
        except baselines.BaselineUnavailable as why:
            skipped[baseline] = str(why)
            print(why, flush=True)
            continue
        seconds = time.perf_counter() - began
        (args.out / "baselines").mkdir(exist_ok=True)
        np.save(args.out / "baselines" / f"{baseline}.npy", paths.astype(np.float32))
        models[baseline] = {**score(paths, values, observed, past, season, multivariate),
                            "seconds": round(seconds, 2)}

    report = {
        "series": str(args.csv), "targets": targets, "covariates": covariates,
        "freq": series.freq, "freq_source": freq_source, "missing_values": missing,
        "csv_sha256": settings["csv_sha256"], "config_file": str(config),
        "length": series.length, "context": args.context,
        "horizon": args.horizon, "origins": args.origins, "num_samples": args.num_samples,
        "origin_steps": origins.tolist(),
        "origin_times": [str(series.times[o])[:19] for o in origins],
        "season": season, "windows": asdict(windows), "features": probe.feature_names,
        "config": {"model": asdict(cfg.model), "train": asdict(cfg.train)},
        "overrides": args.overrides, "seed": args.seed, "fit_window": args.fit_window,
        "val": result.val, "models": models, "skipped": skipped,
    }
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    fan_chart(args.out / "fan_chart.png", series, origins, samples, args.context,
              f"{args.csv.stem}: {name}, C={args.context} H={args.horizon} N={args.num_samples}")
    _print_table(models)
    return report


def _name(path: Path | None) -> str | None:
    return None if path is None else path.name


def _print_table(models: dict) -> None:
    multivariate = "crps_sum" in next(iter(models.values()))
    keys = ["variable_averaged_crps", "mase", "coverage_50", "coverage_90"]
    keys += (["crps_sum", "energy_score", "normalized_crps_mixed_units"] if multivariate
             else ["crps"])
    labels = {"variable_averaged_crps": "nCRPS var-avg", "coverage_50": "cov 50",
              "coverage_90": "cov 90", "energy_score": "energy",
              "normalized_crps_mixed_units": "nCRPS mixed"}
    print(f"{'model':18}" + "".join(f"{labels.get(k, k):>15}" for k in keys))
    for name, m in models.items():
        cells = "".join(f"{m[k]:15.4f}" if m.get(k) is not None else f"{'-':>15}" for k in keys)
        print(f"{name:18}{cells}")
    if multivariate:
        print("nCRPS var-avg: each variable's CRPS over its own sum of |target|, averaged over "
              "the variables (the headline); nCRPS mixed: pooled over the variables, mixing "
              "their units")


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:  # bad input: one line naming the file, argument or value
        raise SystemExit(f"forecast.py: {err}") from None
