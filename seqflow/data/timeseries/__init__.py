"""Time series for probabilistic forecasting: CSV reading, calendar features, scaling, backtests.

A :class:`Series` holds ``T`` regularly spaced time steps of ``D`` target variables (``NaN`` and
``observed = False`` where a value is missing) and ``F`` user covariates. The forecasting protocol
is a rolling-origin backtest: :func:`backtest_windows` places ``K`` origins so that the last
``K * H`` steps form ``K`` non-overlapping test windows of horizon ``H``; the *training part* is
every step before the first origin. :class:`TrainingWindows` draws ``context + horizon`` windows
from the training part only (or returns the validation / test windows) as torch tensors laid out
``(variables, time)``.

Frequencies are pandas offset aliases (``"h"``, ``"W-SAT"``, ``"MS"``, ``"2h"``, ...; the
full list in :mod:`~seqflow.data.timeseries.frequencies`). Monthly, quarterly and yearly series
are indexed by calendar period, and :attr:`Series.times` holds each period's first instant.

One module per concern, each importing only those before it:

* :mod:`~seqflow.data.timeseries.frequencies`: aliases, :func:`parse_freq`, :func:`time_grid`,
  :func:`infer_frequency` (the frequency the timestamps themselves show), :func:`season_length`;
* :mod:`~seqflow.data.timeseries.series`: :class:`Series`, :func:`series_from_array`,
  :func:`read_series_csv`;
* :mod:`~seqflow.data.timeseries.backtest`: :func:`backtest_windows`, :func:`check_length`;
* :mod:`~seqflow.data.timeseries.missing`: :func:`fill_missing`;
* :mod:`~seqflow.data.timeseries.scaling`: :class:`Scale` and the mean, window and standard
  scalings (DeepAR's mean scaling: Salinas et al., International Journal of Forecasting 36
  (2020), section 3.3);
* :mod:`~seqflow.data.timeseries.calendar`: :func:`calendar_features`, :func:`future_times`;
* :mod:`~seqflow.data.timeseries.windows`: :class:`TrainingWindows`;
* :mod:`~seqflow.data.timeseries.collections`: :class:`SeriesCollection` (many series of one
  frequency) read by :func:`read_collection` from a long-format file or a folder of CSV files,
  :class:`CollectionWindows` drawn across its series, and :func:`future_inputs` for a
  forecast past each series' end.
"""

from seqflow.data.timeseries.backtest import backtest_windows, check_length
from seqflow.data.timeseries.calendar import (
    calendar_feature_names,
    calendar_features,
    future_times,
)
from seqflow.data.timeseries.collections import (
    COLLECTION_SCALINGS,
    WINDOW_WEIGHTS,
    CollectionWindows,
    SeriesCollection,
    future_inputs,
    read_collection,
    read_long_table,
    read_series_folder,
)
from seqflow.data.timeseries.frequencies import (
    SEASONS,
    Frequency,
    infer_frequency,
    parse_freq,
    same_frequency,
    season_length,
    time_grid,
)
from seqflow.data.timeseries.missing import fill_missing
from seqflow.data.timeseries.scaling import (
    SCALINGS,
    Scale,
    mean_abs_scale,
    standard_scale,
    window_scale,
)
from seqflow.data.timeseries.series import Series, read_series_csv, series_from_array
from seqflow.data.timeseries.windows import SPLITS, TrainingWindows

__all__ = [
    "COLLECTION_SCALINGS",
    "SCALINGS",
    "SEASONS",
    "SPLITS",
    "WINDOW_WEIGHTS",
    "CollectionWindows",
    "Frequency",
    "Scale",
    "Series",
    "SeriesCollection",
    "TrainingWindows",
    "backtest_windows",
    "calendar_feature_names",
    "calendar_features",
    "check_length",
    "fill_missing",
    "future_inputs",
    "future_times",
    "infer_frequency",
    "mean_abs_scale",
    "parse_freq",
    "read_collection",
    "read_long_table",
    "read_series_csv",
    "read_series_folder",
    "same_frequency",
    "season_length",
    "series_from_array",
    "standard_scale",
    "time_grid",
    "window_scale",
]
