"""Time series for probabilistic forecasting: CSV reading, calendar features, scaling, backtests.

A :class:`Series` holds ``T`` regularly spaced time steps of ``D`` target variables (``NaN`` and
``observed = False`` where a value is missing) and ``F`` user covariates. The forecasting protocol
is a rolling-origin backtest: :func:`backtest_windows` places ``K`` origins so that the last
``K * H`` steps form ``K`` non-overlapping test windows of horizon ``H``; the *training part* is
every step before the first origin. :class:`TrainingWindows` draws ``context + horizon`` windows
from the training part only (or returns the validation / test windows) as torch tensors laid out
``(variables, time)``.

Frequencies are pandas offset aliases: ``"min"``, ``"h"``/``"H"``, ``"D"``, ``"W"`` (also
anchored, ``"W-SAT"``), ``"MS"``/``"M"``/``"ME"``, ``"QS"``/``"Q"``/``"QE"``,
``"YS"``/``"Y"``/``"YE"``/``"A"``, optionally with a multiple (``"2h"``). Minute to weekly series
live on the grid ``first timestamp + k * step``. Monthly, quarterly and yearly series are indexed
by calendar period: any timestamp inside the period names it, and :attr:`Series.times` holds each
period's first instant.

Reference for the mean scaling: Salinas, Flunkert, Gasthaus, Januschowski, "DeepAR: Probabilistic
forecasting with autoregressive recurrent networks", International Journal of Forecasting 36
(2020), section 3.3.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

_MISSING_CELLS = frozenset({"", "na", "nan", "n/a", "null"})

# --- frequencies -----------------------------------------------------------------------------
_UNIT_OF_ALIAS = {
    "min": "min", "T": "min",
    "h": "h", "H": "h",
    "D": "D",
    "W": "W",
    "M": "M", "MS": "M", "ME": "M",
    "Q": "Q", "QS": "Q", "QE": "Q",
    "Y": "Y", "YS": "Y", "YE": "Y", "A": "Y", "AS": "Y",
}  # fmt: skip
_STEP_US = {"min": 60_000_000, "h": 3_600_000_000, "D": 86_400_000_000, "W": 604_800_000_000}
_PERIOD_NAME = {"M": "month", "Q": "quarter", "Y": "year"}
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_ALIAS_PATTERN = re.compile(r"^(\d*)([A-Za-z]+)(?:-([A-Za-z]{3}))?$")

# Calendar features per unit: (name, period) pairs, each giving a sin and a cos channel.
_CALENDAR = {
    "min": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_year"),
    "h": ("hour_of_day", "day_of_week", "day_of_year"),
    "D": ("day_of_week", "day_of_year"),
    "W": ("day_of_year",),
    "M": ("month_of_year",),
    "Q": ("month_of_year",),
    "Y": (),
}


@dataclass(frozen=True)
class Frequency:
    """A parsed frequency alias: ``unit`` in ``min, h, D, W, M, Q, Y`` and a multiple ``n``."""

    alias: str
    unit: str
    n: int

    @property
    def fixed(self) -> bool:
        """True for units of fixed duration (minute to week), False for calendar periods."""
        return self.unit in _STEP_US

    @property
    def step_us(self) -> int:
        """Step in microseconds (fixed units only)."""
        return self.n * _STEP_US[self.unit]


def parse_freq(freq: str) -> Frequency:
    """Parse a pandas offset alias such as ``"h"``, ``"W-SAT"``, ``"MS"`` or ``"2h"``.

    >>> parse_freq("W-SAT")
    Frequency(alias='W-SAT', unit='W', n=1)
    >>> parse_freq("QS").unit
    'Q'
    """
    match = _ALIAS_PATTERN.match(freq.strip()) if isinstance(freq, str) else None
    if match is None or match.group(2) not in _UNIT_OF_ALIAS:
        raise ValueError(
            f"freq={freq!r} is not a supported frequency; use one of "
            f"{', '.join(_UNIT_OF_ALIAS)} (optionally with a multiple such as '2h')"
        )
    count, base, anchor = match.groups()
    unit = _UNIT_OF_ALIAS[base]
    if anchor is not None and not (unit == "W" and anchor.upper() in _WEEKDAYS):
        raise ValueError(f"freq={freq!r}: only weekly aliases take an anchor (such as 'W-SAT')")
    n = int(count) if count else 1
    if n < 1:
        raise ValueError(f"freq={freq!r}: the multiple must be at least 1")
    return Frequency(alias=freq, unit=unit, n=n)


def _keys(times: np.ndarray, freq: Frequency) -> np.ndarray:
    """Integer position of each timestamp on the unit's axis: microseconds, or period number."""
    if freq.fixed:
        return times.astype("datetime64[us]").astype(np.int64)
    months = times.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    if freq.unit == "M":
        return months
    if freq.unit == "Q":
        return np.floor_divide(months, 3)
    return np.floor_divide(months, 12)


def _times_of_keys(keys: np.ndarray, freq: Frequency) -> np.ndarray:
    if freq.fixed:
        return keys.astype("datetime64[us]")
    months = keys * {"M": 1, "Q": 3, "Y": 12}[freq.unit]
    return months.astype("datetime64[M]").astype("datetime64[us]")


def time_grid(start: str | np.datetime64, length: int, freq: str) -> np.ndarray:
    """``length`` timestamps ``(length,)`` datetime64[us] from ``start`` at ``freq``.

    Period units start at the period containing ``start`` and return period starts.

    >>> time_grid("2021-03-15", 3, "MS").astype("datetime64[D]")
    array(['2021-03-01', '2021-04-01', '2021-05-01'], dtype='datetime64[D]')
    """
    f = parse_freq(freq)
    first = _keys(np.array([np.datetime64(start, "us")]), f)[0]
    step = f.step_us if f.fixed else f.n
    return _times_of_keys(first + step * np.arange(length, dtype=np.int64), f)


# --- the series ------------------------------------------------------------------------------
@dataclass
class Series:
    """A regularly spaced multivariate series.

    ``times`` ``(T,)`` datetime64[us]; ``values`` ``(T, D)`` float32 with ``NaN`` where missing;
    ``observed`` ``(T, D)`` bool (False exactly where ``values`` is ``NaN``); ``covariates``
    ``(T, F)`` float32 user covariates (``NaN`` where not given); ``freq`` the alias it was read
    with; ``source`` names the file (or ``"<array>"``) in error messages.
    """

    times: np.ndarray
    values: np.ndarray
    observed: np.ndarray
    covariates: np.ndarray
    freq: str
    targets: tuple[str, ...]
    covariate_names: tuple[str, ...] = ()
    source: str = "<array>"
    frequency: Frequency = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.frequency = parse_freq(self.freq)
        T = len(self.times)
        D = len(self.targets)
        if self.values.shape != (T, D) or self.observed.shape != (T, D):
            raise ValueError(
                f"{self.source}: values {self.values.shape} and observed {self.observed.shape} "
                f"must both be (T, D) = ({T}, {D})"
            )
        if self.covariates.shape != (T, len(self.covariate_names)):
            raise ValueError(
                f"{self.source}: covariates {self.covariates.shape} must be "
                f"(T, F) = ({T}, {len(self.covariate_names)})"
            )

    @property
    def length(self) -> int:
        return len(self.times)

    @property
    def num_variables(self) -> int:
        return len(self.targets)


def series_from_array(
    values: np.ndarray | Sequence[float],
    start: str | np.datetime64,
    freq: str,
    targets: Sequence[str] | None = None,
) -> Series:
    """A :class:`Series` from ``values`` ``(T,)`` or ``(T, D)``; ``NaN`` marks missing values.

    >>> s = series_from_array([1.0, float("nan"), 3.0], "2020-01-01", "D")
    >>> s.observed[:, 0].tolist(), str(s.times[-1])
    ([True, False, True], '2020-01-03T00:00:00.000000')
    """
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or len(array) == 0:
        raise ValueError(f"values must be (T,) or (T, D) with T >= 1, got shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError("values contain infinite entries; use NaN for missing values")
    names = tuple(targets) if targets is not None else tuple(f"y{d}" for d in range(array.shape[1]))
    if len(names) != array.shape[1]:
        raise ValueError(f"targets has {len(names)} names for {array.shape[1]} value columns")
    return Series(
        times=time_grid(start, len(array), freq),
        values=array,
        observed=~np.isnan(array),
        covariates=np.zeros((len(array), 0), dtype=np.float32),
        freq=freq,
        targets=names,
    )


# --- CSV -------------------------------------------------------------------------------------
def _parse_numbers(cells: list[str], path: Path, column: str, lines: list[int]) -> np.ndarray:
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        text = cell.strip()
        if text.lower() in _MISSING_CELLS:
            out[i] = np.nan
            continue
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"{path}: line {lines[i]}, column {column!r}: cannot read {cell!r} as a number"
            ) from None
        if not math.isfinite(number):
            raise ValueError(
                f"{path}: line {lines[i]}, column {column!r}: value {cell!r} is not finite"
            )
        out[i] = number
    return out


def _parse_times(cells: list[str], path: Path, column: str, lines: list[int]) -> np.ndarray:
    def fail(i: int) -> ValueError:
        return ValueError(
            f"{path}: line {lines[i]}, column {column!r}: cannot read {cells[i]!r} as a timestamp "
            "(ISO 8601 without timezone expected)"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns (and converts) on timezone offsets
        try:
            times = np.array([c.strip() for c in cells], dtype="datetime64[us]")
        except (ValueError, UserWarning):
            times = np.empty(len(cells), dtype="datetime64[us]")
            for i, cell in enumerate(cells):
                try:
                    times[i] = np.datetime64(cell.strip(), "us")
                except (ValueError, UserWarning):
                    raise fail(i) from None
    bad = np.flatnonzero(np.isnat(times))
    if len(bad):
        raise fail(int(bad[0]))
    return times


def read_series_csv(
    path: str | Path,
    time_column: str,
    targets: Sequence[str],
    freq: str,
    covariates: Sequence[str] = (),
) -> Series:
    """Read a regularly spaced series from a CSV file with a header row.

    Numeric cells that are empty or ``NA``/``NaN``/``N/A``/``null`` are missing values.
    Timestamps are ISO 8601 (``2020-01-31``, ``2020-01-31 13:00:00``). Rows must be sorted by
    time without duplicates; missing grid steps are inserted as unobserved rows (``NaN``
    targets and covariates), and how many is logged at INFO level. Every error is one line
    naming the file, the 1-based line in the file and the column.
    """
    path = Path(path)
    f = parse_freq(freq)
    targets = list(targets)
    covariates = list(covariates)
    if not targets:
        raise ValueError(f"{path}: targets is empty; name at least one target column")
    wanted = [time_column, *targets, *covariates]
    repeated = sorted({c for c in wanted if wanted.count(c) > 1})
    if repeated:
        raise ValueError(f"{path}: column(s) {', '.join(map(repr, repeated))} requested twice")
    if not path.is_file():
        raise ValueError(f"{path}: file not found")

    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        for name in wanted:
            if name not in header:
                raise ValueError(
                    f"{path}: line 1: column {name!r} not found; columns present: "
                    f"{', '.join(header)}"
                )
        index = [header.index(name) for name in wanted]
        columns: list[list[str]] = [[] for _ in wanted]
        lines: list[int] = []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}: line {reader.line_num}: {len(row)} fields, the header has "
                    f"{len(header)}"
                )
            for column, j in zip(columns, index, strict=True):
                column.append(row[j])
            lines.append(reader.line_num)
    if not lines:
        raise ValueError(f"{path}: no data rows")

    times = _parse_times(columns[0], path, time_column, lines)
    numbers = [
        _parse_numbers(cells, path, name, lines)
        for cells, name in zip(columns[1:], wanted[1:], strict=True)
    ]

    keys = _keys(times, f)
    step = f.step_us if f.fixed else f.n
    diffs = np.diff(keys)
    if (diffs <= 0).any():
        i = int(np.flatnonzero(diffs <= 0)[0]) + 1
        where = f"{path}: line {lines[i]}, column {time_column!r}"
        if diffs[i - 1] < 0:
            raise ValueError(
                f"{where}: timestamp {times[i]} is earlier than {times[i - 1]} on line "
                f"{lines[i - 1]}; rows must be sorted by time"
            )
        if f.fixed:
            raise ValueError(
                f"{where}: duplicate timestamp {times[i]} (already on line {lines[i - 1]})"
            )
        raise ValueError(
            f"{where}: duplicate timestamp {times[i]} falls in the same "
            f"{_PERIOD_NAME[f.unit]} as {times[i - 1]} on line {lines[i - 1]}"
        )
    off = (keys - keys[0]) % step != 0
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{path}: line {lines[i]}, column {time_column!r}: timestamp {times[i]} is not on "
            f"the {freq!r} grid that starts at {times[0]} (line {lines[0]})"
        )

    slot = (keys - keys[0]) // step
    T = int(slot[-1]) + 1
    inserted = T - len(keys)
    if inserted:
        first_gap = int(np.flatnonzero(diffs != step)[0])
        logger.info(
            "%s: inserted %d missing rows on the %r grid (first gap after line %d); they are "
            "marked unobserved",
            path, inserted, freq, lines[first_gap],
        )  # fmt: skip
    full = np.full((T, len(numbers)), np.nan, dtype=np.float32)
    if numbers:
        full[slot] = np.stack(numbers, axis=1)
    values = full[:, : len(targets)]
    return Series(
        times=_times_of_keys(keys[0] + step * np.arange(T, dtype=np.int64), f),
        values=np.ascontiguousarray(values),
        observed=~np.isnan(values),
        covariates=np.ascontiguousarray(full[:, len(targets) :]),
        freq=freq,
        targets=tuple(targets),
        covariate_names=tuple(covariates),
        source=str(path),
    )


# --- backtest protocol -----------------------------------------------------------------------
def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def backtest_windows(T: int, context: int, horizon: int, origins: int) -> np.ndarray:
    """Origins ``(origins,)`` such that the last ``origins * horizon`` steps are the test windows.

    Origin ``k`` is ``T - (origins - k) * horizon``; its test window is ``[o_k, o_k + horizon)``
    and its context ``[o_k - context, o_k)``. The training part is ``[0, o_0)``.

    >>> backtest_windows(100, 24, 10, 3).tolist()
    [70, 80, 90]
    """
    context = _positive("context", context)
    horizon = _positive("horizon", horizon)
    origins = _positive("origins", origins)
    need = context + origins * horizon
    if T < need:
        raise ValueError(
            f"T={T} time steps is too short for context {context} + origins {origins} x "
            f"horizon {horizon} = {need}"
        )
    return T - horizon * np.arange(origins, 0, -1, dtype=np.int64)


def check_length(series: Series, context: int, horizon: int, origins: int) -> None:
    """Raise if ``series`` has fewer than ``context + origins * horizon`` time steps."""
    need = (
        _positive("context", context)
        + _positive("origins", origins) * _positive("horizon", horizon)
    )
    if series.length < need:
        raise ValueError(
            f"{series.source}: {series.length} time steps is too short for context {context} "
            f"+ origins {origins} x horizon {horizon} = {need}"
        )


# --- missing values --------------------------------------------------------------------------
def fill_missing(values: np.ndarray, observed: np.ndarray, what: str = "values") -> np.ndarray:
    """Forward fill unobserved entries of ``values`` ``(T, D)``, then backward fill the start.

    Raises when a column has no observed entry at all.

    >>> v = np.array([[np.nan], [2.0], [np.nan], [4.0]])
    >>> fill_missing(v, ~np.isnan(v))[:, 0].tolist()
    [2.0, 2.0, 2.0, 4.0]
    """
    if values.shape != observed.shape or values.ndim != 2:
        raise ValueError(f"{what}: values {values.shape} and observed {observed.shape} must "
                         "both be (T, D)")
    empty = ~observed.any(axis=0)
    if empty.any():
        raise ValueError(
            f"{what}: column {int(np.flatnonzero(empty)[0])} has no observed value in the "
            f"{len(values)} steps given"
        )
    steps = np.arange(len(values))[:, None]
    last = np.maximum.accumulate(np.where(observed, steps, -1), axis=0)
    last = np.where(last < 0, observed.argmax(axis=0)[None, :], last)
    return np.take_along_axis(values, last, axis=0)


# --- scaling ---------------------------------------------------------------------------------
SCALINGS = ("mean", "standard", "window")


@dataclass(frozen=True)
class Scale:
    """Affine map ``y = (x - loc) / scale`` per variable; ``loc`` and ``scale`` are ``(D,)``."""

    loc: np.ndarray
    scale: np.ndarray

    def _shaped(self, x, var_axis: int):
        shape = [1] * x.ndim
        shape[var_axis] = -1
        loc, scale = self.loc.reshape(shape), self.scale.reshape(shape)
        if isinstance(x, torch.Tensor):
            loc = torch.as_tensor(loc, dtype=x.dtype, device=x.device)
            scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
        return loc, scale

    def apply(self, x, var_axis: int = 0):
        """Scaled ``(x - loc) / scale`` for a numpy array or tensor with variables on
        ``var_axis`` (``(D, time)`` by default; ``var_axis=-1`` for ``(..., time, D)``)."""
        loc, scale = self._shaped(x, var_axis)
        return (x - loc) / scale

    def invert(self, y, var_axis: int = 0):
        """Original units ``y * scale + loc`` (same layout rules as :meth:`apply`)."""
        loc, scale = self._shaped(y, var_axis)
        return y * scale + loc


def mean_abs_scale(context_values: np.ndarray, context_observed: np.ndarray) -> Scale:
    """DeepAR's scale from a window's context part ``(D, context)``.

    ``scale_d = 1 + (1 / n_d) * sum |x_{d,t}|`` over the ``n_d`` observed context steps
    (``scale_d = 1`` when ``n_d = 0``); ``loc = 0``.

    >>> x = np.array([[1.0, -3.0, np.nan]])
    >>> mean_abs_scale(x, ~np.isnan(x)).scale.tolist()
    [3.0]
    """
    count = context_observed.sum(axis=1)
    total = np.where(context_observed, np.abs(np.nan_to_num(context_values)), 0.0).sum(axis=1)
    scale = 1.0 + total / np.maximum(count, 1)
    return Scale(loc=np.zeros_like(scale), scale=scale.astype(np.float64))


def window_scale(
    context_values: np.ndarray, context_observed: np.ndarray, floor: float = 1e-3
) -> Scale:
    """Standardization by a window's context part ``(D, context)``.

    ``loc_d`` is the mean and ``s_d`` the population standard deviation of the ``n_d``
    observed context steps; ``scale_d = max(s_d, floor * (1 + mean |x_d|))`` so that a flat
    context does not blow up the window (``loc = 0``, ``scale = 1`` when ``n_d = 0``). Unlike
    :func:`mean_abs_scale` it removes the level, which keeps the steps of a series with a
    trend or a large offset (CO2 in ppm, prices) at a scale of order one.

    >>> x = np.array([[1.0, 3.0, np.nan], [5.0, 5.0, 5.0]])
    >>> s = window_scale(x, ~np.isnan(x))
    >>> s.loc.tolist(), s.scale.tolist()
    ([2.0, 5.0], [1.0, 0.006])
    """
    seen = context_observed
    count = seen.sum(axis=1)
    values = np.where(seen, np.nan_to_num(context_values).astype(np.float64), 0.0)
    mean = values.sum(axis=1) / np.maximum(count, 1)
    var = np.where(seen, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(count, 1)
    mean_abs = np.abs(values).sum(axis=1) / np.maximum(count, 1)
    scale = np.maximum(np.sqrt(var), floor * (1.0 + mean_abs))
    empty = count == 0
    return Scale(loc=np.where(empty, 0.0, mean), scale=np.where(empty, 1.0, scale))


def standard_scale(values: np.ndarray, observed: np.ndarray, train_end: int) -> Scale:
    """Per-variable mean and population standard deviation of the observed entries of
    ``values[:train_end]`` ``(T, D)``; a zero deviation is replaced by 1."""
    part, seen = values[:train_end].astype(np.float64), observed[:train_end]
    count = seen.sum(axis=0)
    if (count == 0).any():
        d = int(np.flatnonzero(count == 0)[0])
        raise ValueError(f"variable {d} has no observed value before step {train_end}")
    mean = np.where(seen, part, 0.0).sum(axis=0) / count
    var = np.where(seen, (part - mean) ** 2, 0.0).sum(axis=0) / count
    std = np.sqrt(var)
    std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)
    return Scale(loc=mean, scale=std)


# --- calendar covariates ---------------------------------------------------------------------
def calendar_feature_names(freq: str) -> list[str]:
    """Names of the :func:`calendar_features` columns for ``freq``.

    >>> calendar_feature_names("D")
    ['day_of_week_sin', 'day_of_week_cos', 'day_of_year_sin', 'day_of_year_cos']
    """
    unit = parse_freq(freq).unit
    return [f"{name}_{fn}" for name in _CALENDAR[unit] for fn in ("sin", "cos")]


def calendar_features(times: np.ndarray, freq: str) -> np.ndarray:
    """Sine and cosine of calendar positions, ``(T,) -> (T, F)`` float32.

    Angles ``2 pi u`` with ``u`` = minute / 60 (minute of hour), (hour + minute / 60) / 24
    (hour of day), weekday / 7 with Monday = 0 (day of week), (day of year - 1) / days in that
    year (day of year), (month - 1) / 12 (month of year). Minute series get all four of the
    first ones, hourly: hour, week and year; daily: week and year; weekly: day of year;
    monthly and quarterly: month of year; yearly: none.
    """
    unit = parse_freq(freq).unit
    t = np.asarray(times).astype("datetime64[us]")
    days = t.astype("datetime64[D]")
    years = t.astype("datetime64[Y]")
    minutes_in_day = (t - days).astype("timedelta64[us]").astype(np.int64) / 60e6
    fractions = {
        "minute_of_hour": lambda: np.mod(minutes_in_day, 60.0) / 60.0,
        "hour_of_day": lambda: minutes_in_day / 1440.0,
        "day_of_week": lambda: np.mod(days.astype(np.int64) + 3, 7) / 7.0,  # 1970-01-01: Thu
        "day_of_year": lambda: (days - years.astype("datetime64[D]")).astype(np.int64)
        / ((years + 1).astype("datetime64[D]") - years.astype("datetime64[D]")).astype(np.int64),
        "month_of_year": lambda: np.mod(t.astype("datetime64[M]").astype(np.int64), 12) / 12.0,
    }
    columns = []
    for name in _CALENDAR[unit]:
        angle = 2 * np.pi * fractions[name]()
        columns += [np.sin(angle), np.cos(angle)]
    if not columns:
        return np.zeros((len(t), 0), dtype=np.float32)
    return np.stack(columns, axis=1).astype(np.float32)


def future_times(series: Series, steps: int) -> np.ndarray:
    """The ``steps`` timestamps ``(steps,)`` that follow the end of ``series``."""
    return time_grid(series.times[-1], steps + 1, series.freq)[1:]


# --- windows ---------------------------------------------------------------------------------
SPLITS = ("train", "val", "test")


class TrainingWindows(Dataset):
    """Windows of ``context + horizon`` steps for training, validation or backtest testing.

    The ``origins`` test origins come from :func:`backtest_windows`; ``S`` is the first one.
    The last ``val_origins * horizon`` steps before ``S`` are validation horizons (origins
    ``S - (val_origins - v) * horizon``); training windows lie entirely before the first
    validation origin (before ``S`` when ``val_origins = 0``). ``split="train"`` item ``i`` starts
    at a position drawn uniformly with ``numpy.random.default_rng([seed, i])``, a pure function
    of ``(seed, i)``; ``split="val"``/``"test"`` item ``i`` is the window of the ``i``-th
    validation / test origin.

    Each item is a dict of tensors:

    - ``x`` ``(D, C + H)`` float32: scaled values, missing entries forward filled (then
      backward filled at the series start) using only steps before ``S`` for training and
      validation windows, and only steps before the window's origin for its context part;
    - ``mask`` ``(D, C + H)`` bool: observed entries (use it to mask the loss and metrics);
    - ``context`` ``(F_cal + F_user + D, C + H)`` float32: :func:`calendar_features`, user
      covariates (filled the same way, standardized with statistics of steps before ``S``), and
      one observed indicator per variable, equal to ``mask`` on the context part and to 1 on
      the horizon part (what a forecaster sees at prediction time);
    - ``scale``, ``loc`` ``(D,)`` float32: ``x = (values - loc) / scale``; ``"mean"`` scaling
      is :func:`mean_abs_scale` of the window's context part, ``"window"`` is
      :func:`window_scale` of the window's context part, ``"standard"`` is
      :func:`standard_scale` of the steps before ``S`` (never any step at or after ``S``);
    - ``index`` the item number and ``start`` the window's first step in the series.
    """

    def __init__(
        self,
        series: Series,
        context: int,
        horizon: int,
        seed: int = 0,
        scaling: str = "mean",
        *,
        origins: int,
        split: str = "train",
        val_origins: int = 1,
        num_windows: int | None = None,
    ):
        if scaling not in SCALINGS:
            raise ValueError(f"scaling={scaling!r} is not one of {', '.join(SCALINGS)}")
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
        if not isinstance(val_origins, int) or val_origins < 0:
            raise ValueError(f"val_origins must be a non-negative integer, got {val_origins!r}")
        check_length(series, context, horizon, origins)
        self.series, self.context, self.horizon = series, context, horizon
        self.seed, self.scaling, self.split = int(seed), scaling, split
        self.test_origins = backtest_windows(series.length, context, horizon, origins)
        S = int(self.test_origins[0])
        self.train_end = S - val_origins * horizon
        self.val_origins = self.train_end + horizon * np.arange(val_origins, dtype=np.int64)
        window = context + horizon
        if self.train_end < window:
            raise ValueError(
                f"{series.source}: the training part before step {self.train_end} is shorter "
                f"than one window of context {context} + horizon {horizon} = {window} "
                f"(T={series.length}, origins={origins}, val_origins={val_origins})"
            )
        self.num_starts = self.train_end - window + 1

        where = f"{series.source} (steps before {S})"
        self._filled = fill_missing(series.values[:S], series.observed[:S], where)
        self._standard = (
            standard_scale(series.values, series.observed, S) if scaling == "standard" else None
        )
        calendar = calendar_features(series.times, series.freq)
        user = series.covariates
        if user.shape[1]:
            given = ~np.isnan(user)
            user = fill_missing(user, given, f"{series.source} covariates")
            user = standard_scale(user, given, S).apply(user, var_axis=-1)
        self._features = np.concatenate([calendar, user.astype(np.float32)], axis=1)
        self.feature_names = (
            calendar_feature_names(series.freq)
            + list(series.covariate_names)
            + [f"observed_{name}" for name in series.targets]
        )

        if split == "train":
            self._length = self.num_starts if num_windows is None else int(num_windows)
            if self._length < 1:
                raise ValueError(f"num_windows must be at least 1, got {num_windows!r}")
        elif num_windows is not None:
            raise ValueError(f"num_windows applies to split='train' only, not {split!r}")
        else:
            self._length = len(self.val_origins if split == "val" else self.test_origins)

    def __len__(self) -> int:
        return self._length

    def start_of(self, index: int) -> int:
        """First step of item ``index``'s window in the series."""
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} {self.split} items")
        if self.split == "train":
            rng = np.random.default_rng([self.seed, index])
            return int(rng.integers(self.num_starts))
        origins = self.val_origins if self.split == "val" else self.test_origins
        return int(origins[index]) - self.context

    def _filled_window(self, start: int) -> np.ndarray:
        end = start + self.context + self.horizon
        if end <= len(self._filled):
            return self._filled[start:end]
        values, observed = self.series.values[:end], self.series.observed[:end]
        return fill_missing(values, observed, self.series.source)[start:end]

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        start = self.start_of(index)
        C, H = self.context, self.horizon
        stop = start + C + H
        raw = self.series.values[start:stop].T
        mask = self.series.observed[start:stop].T
        if self.scaling == "mean":
            scale = mean_abs_scale(raw[:, :C], mask[:, :C])
        elif self.scaling == "window":
            scale = window_scale(raw[:, :C], mask[:, :C])
        else:
            scale = self._standard
        x = scale.apply(self._filled_window(start).T.astype(np.float64))
        indicator = mask.astype(np.float32)
        indicator[:, C:] = 1.0
        context = np.concatenate([self._features[start:stop].T, indicator], axis=0)
        return {
            "x": torch.from_numpy(x.astype(np.float32)),
            "context": torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)),
            "scale": torch.from_numpy(scale.scale.astype(np.float32)),
            "loc": torch.from_numpy(scale.loc.astype(np.float32)),
            "index": index,
            "start": start,
        }
