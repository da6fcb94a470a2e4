"""Frequencies of a time series: pandas offset aliases, their time axis and regular grids.

Frequencies are pandas offset aliases: ``"min"``, ``"h"``/``"H"``, ``"D"``, ``"W"`` (also
anchored, ``"W-SAT"``), ``"MS"``/``"M"``/``"ME"``, ``"QS"``/``"Q"``/``"QE"``,
``"YS"``/``"Y"``/``"YE"``/``"A"``, optionally with a multiple (``"2h"``). Minute to weekly series
live on the grid ``first timestamp + k * step``. Monthly, quarterly and yearly series are indexed
by calendar period: any timestamp inside the period names it, and the grid holds each period's
first instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

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


def _gcd(values: np.ndarray) -> int:
    return int(np.gcd.reduce(values)) if len(values) else 0


def _weekday(time: np.datetime64) -> str:
    """``"MON"`` .. ``"SUN"``: the weekday of ``time`` (1970-01-01 was a Thursday)."""
    return _WEEKDAYS[(int(np.datetime64(time, "D").astype(np.int64)) + 3) % 7]


def infer_frequency(times: np.ndarray) -> Frequency:
    """The coarsest frequency whose grid holds every timestamp of ``times`` ``(T,)``.

    Timestamps that all sit at one position inside their month (the same day and time of day,
    or all on the month's last day) and at least a month apart are calendar periods (``MS``,
    ``QS``, ``YS`` with a multiple, at the greatest common divisor of the month gaps; quarters
    and years only when every timestamp opens its quarter or year). Otherwise the step is the
    greatest common divisor of the gaps in whole weeks (anchored on the first timestamp's
    weekday), days, hours or minutes. Missing steps are allowed: gaps that are multiples of
    the step leave the frequency unchanged.

    >>> infer_frequency(np.array(["2020-01-01", "2020-01-02", "2020-01-05"], "datetime64[us]"))
    Frequency(alias='D', unit='D', n=1)
    >>> infer_frequency(np.array(["2020-01-01", "2020-04-01", "2020-10-01"], "datetime64[us]"))
    Frequency(alias='QS', unit='Q', n=1)
    """
    times = np.asarray(times).astype("datetime64[us]")
    if times.ndim != 1 or len(times) < 2:
        raise ValueError(f"cannot infer a frequency from {times.size} timestamp(s); give freq")
    us = times.astype(np.int64)
    gaps = np.diff(us)
    if (gaps <= 0).any():
        i = int(np.flatnonzero(gaps <= 0)[0])
        raise ValueError(
            f"cannot infer a frequency: timestamp {times[i + 1]} does not come after {times[i]}"
        )
    months = times.astype("datetime64[M]")
    in_month = us - months.astype("datetime64[us]").astype(np.int64)
    last_day = (months + 1).astype("datetime64[D]") - times.astype("datetime64[D]") == 1
    month_gaps = np.diff(months.astype(np.int64))
    same_place = (in_month == in_month[0]).all() or (
        last_day.all() and (us % _STEP_US["D"] == us[0] % _STEP_US["D"]).all()
    )
    if same_place and (month_gaps >= 1).all():
        n = _gcd(month_gaps)
        opens_quarter = bool((months.astype(np.int64) % 3 == 0).all())
        opens_year = bool((months.astype(np.int64) % 12 == 0).all())
        if n % 12 == 0 and opens_year:
            unit, n = "YS", n // 12
        elif n % 3 == 0 and opens_quarter:
            unit, n = "QS", n // 3
        else:
            unit = "MS"
        return parse_freq(f"{n if n > 1 else ''}{unit}")
    step = _gcd(gaps)
    for unit in ("W", "D", "h", "min"):
        if step % _STEP_US[unit] == 0:
            n = step // _STEP_US[unit]
            anchor = ""
            if unit == "W":
                anchor = f"-{_weekday(times[0])}"
            return parse_freq(f"{n if n > 1 else ''}{unit}{anchor}")
    raise ValueError(
        f"cannot infer a frequency: the timestamps are {step} µs apart at the finest, "
        "below a minute"
    )


def same_frequency(a: Frequency, b: Frequency) -> bool:
    """True when two parsed aliases name one grid (``MS`` and ``M``, ``W`` and ``W-SUN``)."""
    anchors = [f.alias.split("-")[1].upper() if "-" in f.alias else "SUN" for f in (a, b)]
    return (a.unit, a.n) == (b.unit, b.n) and (a.unit != "W" or anchors[0] == anchors[1])


# Season lengths per unit, in steps of the unit (hourly: a day, weekly: a year, ...).
SEASONS = {"min": 60, "h": 24, "D": 7, "W": 52, "M": 12, "Q": 4, "Y": 1}


def season_length(freq: str) -> int:
    """Steps in one season of ``freq``: :data:`SEASONS` of its unit divided by its multiple
    (at least 1), e.g. ``"h"`` 24, ``"2h"`` 12, ``"MS"`` 12, ``"QS"`` 4, ``"YS"`` 1.

    >>> season_length("W-SAT"), season_length("2h")
    (52, 12)
    """
    f = parse_freq(freq)
    return max(1, SEASONS[f.unit] // f.n)
