"""Applications of a finished forecaster: prime a stream with a history and draw sample paths.

A forecaster is a flow over a stack of sequence MAF layers trained by the engine
(:mod:`seqflow.train`, task ``masked_likelihood``); this package primes its streaming state with
each history and continues it (:func:`sample_continuations`), at every origin of a backtest
(:func:`backtest_forecasts`), and past the end of every series of a collection
(:func:`forecast_future`; :func:`forecast_run` writes the files of ``seqflow forecast``).
"""

from seqflow.forecasting.future import (
    FORECAST_FORMATS,
    QUANTILES,
    FutureForecast,
    check_forecast_out,
    forecast_future,
    forecast_run,
    forecast_table,
)
from seqflow.forecasting.paths import (
    LOSS_ON,
    WindowBatches,
    backtest_forecasts,
    origin_generator,
    sample_continuations,
    stream_continuations,
)

__all__ = [
    "FORECAST_FORMATS",
    "LOSS_ON",
    "QUANTILES",
    "FutureForecast",
    "WindowBatches",
    "backtest_forecasts",
    "check_forecast_out",
    "forecast_future",
    "forecast_run",
    "forecast_table",
    "origin_generator",
    "sample_continuations",
    "stream_continuations",
]
