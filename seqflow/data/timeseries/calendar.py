"""Calendar covariates: sine and cosine of calendar positions, and the timestamps ahead."""

from __future__ import annotations

import numpy as np

from seqflow.data.timeseries.frequencies import parse_freq, time_grid
from seqflow.data.timeseries.series import Series

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


def future_times(series: Series, horizon: int) -> np.ndarray:
    """The ``horizon`` timestamps ``(horizon,)`` that follow the end of ``series`` (the times of
    a forecast of ``H = horizon`` steps from the series' end)."""
    return time_grid(series.times[-1], horizon + 1, series.freq)[1:]
