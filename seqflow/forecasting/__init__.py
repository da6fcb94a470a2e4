"""Applications of a finished forecaster: prime a stream with a history and draw sample paths.

A forecaster is a flow over a stack of sequence MAF layers trained by the engine
(:mod:`seqflow.train`, task ``masked_likelihood``); this package primes its streaming state with
each history and continues it (:func:`sample_continuations`), at every origin of a backtest
(:func:`backtest_forecasts`).
"""

from seqflow.forecasting.paths import (
    LOSS_ON,
    WindowBatches,
    backtest_forecasts,
    origin_generator,
    sample_continuations,
    stream_continuations,
)

__all__ = [
    "LOSS_ON",
    "WindowBatches",
    "backtest_forecasts",
    "origin_generator",
    "sample_continuations",
    "stream_continuations",
]
