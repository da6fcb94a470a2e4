"""A regularly spaced multivariate series, from an array or read from a CSV file."""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqflow.data.timeseries.frequencies import (
    _PERIOD_NAME,
    Frequency,
    _keys,
    _times_of_keys,
    _weekday,
    infer_frequency,
    parse_freq,
    time_grid,
)

logger = logging.getLogger(__name__)

_MISSING_CELLS = frozenset({"", "na", "nan", "n/a", "null"})


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


def _as_periods(f: Frequency) -> Frequency:
    """A whole number of quarters or years of ``MS`` steps as ``QS``/``YS`` (``3MS`` -> ``QS``),
    so that seasons and calendar features follow the period; other frequencies unchanged."""
    if f.unit != "M" or f.n % 3:
        return f
    n, unit = (f.n // 12, "YS") if f.n % 12 == 0 else (f.n // 3, "QS")
    return parse_freq(f"{n if n > 1 else ''}{unit}")


def _inferred(times: np.ndarray, path: Path, column: str) -> Frequency:
    """:func:`infer_frequency` of the rows, read as calendar periods where it can be."""
    try:
        return _as_periods(infer_frequency(times))
    except ValueError as err:
        raise ValueError(f"{path}: column {column!r}: {err}") from None


def _check_agrees(
    times: np.ndarray, slot: np.ndarray, f: Frequency, path: Path, column: str
) -> None:
    """Refuse a given frequency that the timestamps contradict: one of which every gap between
    rows is a multiple of two or more steps (``slot`` ``(rows,)``, each row's step on its grid,
    has a common divisor above 1), a fixed step for calendar periods, or a weekly anchor on
    another weekday than the rows."""
    try:
        shown = infer_frequency(times)
    except ValueError:  # e.g. monthly rows on varying days and seconds: nothing to compare
        return
    finer = int(np.gcd.reduce(np.diff(slot))) > 1
    period_read_as_step = f.fixed and not shown.fixed
    anchor = f.alias.split("-")[1].upper() if f.unit == "W" and "-" in f.alias else None
    if not (finer or period_read_as_step or (anchor and anchor != _weekday(times[0]))):
        return
    alias = _as_periods(shown).alias
    missing = int(slot[-1]) + 1 - len(slot)
    gap = f" ({missing} of its {int(slot[-1]) + 1} steps would be missing)" if missing else ""
    raise ValueError(
        f"{path}: column {column!r}: freq={f.alias!r} contradicts the timestamps, whose "
        f"frequency is {alias!r}{gap}; give freq={alias!r} or leave freq out to infer it"
    )


def read_series_csv(
    path: str | Path,
    time_column: str,
    targets: Sequence[str],
    freq: str | None = None,
    covariates: Sequence[str] = (),
) -> Series:
    """Read a regularly spaced series from a CSV file with a header row.

    Numeric cells that are empty or ``NA``/``NaN``/``N/A``/``null`` are missing values.
    Timestamps are ISO 8601 (``2020-01-31``, ``2020-01-31 13:00:00``). Rows must be sorted by
    time without duplicates; missing grid steps are inserted as unobserved rows (``NaN``
    targets and covariates), and how many is logged at INFO level. Every error is one line
    naming the file, the 1-based line in the file and the column.

    ``freq=None`` infers the frequency from the timestamps (:func:`infer_frequency`; a whole
    number of quarters or years is read as ``QS``/``YS``) and refuses it when more than half
    of its grid would be missing (irregular timestamps: give ``freq``). A given ``freq`` that
    the timestamps contradict is refused naming both: one of which every gap between rows is a
    multiple of two or more steps (daily rows at ``"h"`` would leave 23 of every 24 steps
    missing), a minute-to-week step for rows that are calendar periods, or a weekly anchor
    (``"W-SUN"``) on another weekday than the rows (plain ``"W"`` takes the first row's
    weekday).
    """
    path = Path(path)
    if freq is not None:
        parse_freq(freq)  # a bad alias is refused before the file is read
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

    return _series_on_grid(path, times, numbers, lines, time_column, targets, covariates,
                           freq)


def _series_on_grid(
    path: str | Path,
    times: np.ndarray,
    numbers: list[np.ndarray],
    lines: list[int],
    time_column: str,
    targets: Sequence[str],
    covariates: Sequence[str],
    freq: str | None,
    check_freq: bool = True,
) -> Series:
    """A :class:`Series` from rows sorted by time: ``times`` ``(R,)``, ``numbers`` one ``(R,)``
    column per target then covariate, ``lines`` the rows' 1-based lines in the file (errors
    name ``path``, the line and ``time_column``). Duplicate and off-grid timestamps are refused;
    missing grid steps are inserted as unobserved rows. ``freq=None`` infers the frequency;
    ``check_freq=False`` skips the check that the rows agree with a given ``freq`` (for a
    collection, whose frequency is the finest of its series')."""
    path = Path(path)
    targets, covariates = list(targets), list(covariates)
    f = None if freq is None else parse_freq(freq)
    if f is None:
        _check_sorted(times, times.astype(np.int64), None, path, time_column, lines)
        f = _inferred(times, path, time_column)
    keys = _keys(times, f)
    step = f.step_us if f.fixed else f.n
    diffs = np.diff(keys)
    _check_sorted(times, keys, f, path, time_column, lines)
    off = (keys - keys[0]) % step != 0
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{path}: line {lines[i]}, column {time_column!r}: timestamp {times[i]} is not on "
            f"the {f.alias!r} grid that starts at {times[0]} (line {lines[0]})"
        )

    slot = (keys - keys[0]) // step
    T = int(slot[-1]) + 1
    inserted = T - len(keys)
    if freq is not None and check_freq and len(keys) > 1:
        _check_agrees(times, slot, f, path, time_column)
    elif freq is None and 2 * inserted > T:
        raise ValueError(
            f"{path}: column {time_column!r}: the inferred frequency {f.alias!r} leaves "
            f"{inserted} of its {T} steps missing; give freq (the timestamps look irregular)"
        )
    if inserted:
        first_gap = int(np.flatnonzero(diffs != step)[0])
        logger.info(
            "%s: inserted %d missing rows on the %r grid (first gap after line %d); they are "
            "marked unobserved",
            path, inserted, f.alias, lines[first_gap],
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
        freq=f.alias,
        targets=tuple(targets),
        covariate_names=tuple(covariates),
        source=str(path),
    )


def _check_sorted(
    times: np.ndarray,
    keys: np.ndarray,
    f: Frequency | None,
    path: Path,
    time_column: str,
    lines: list[int],
) -> None:
    """Refuse rows out of time order, or two rows on one step of ``f`` (``None``: the same
    instant)."""
    diffs = np.diff(keys)
    if (diffs <= 0).any():
        i = int(np.flatnonzero(diffs <= 0)[0]) + 1
        where = f"{path}: line {lines[i]}, column {time_column!r}"
        if diffs[i - 1] < 0:
            raise ValueError(
                f"{where}: timestamp {times[i]} is earlier than {times[i - 1]} on line "
                f"{lines[i - 1]}; rows must be sorted by time"
            )
        if f is None or f.fixed:
            raise ValueError(
                f"{where}: duplicate timestamp {times[i]} (already on line {lines[i - 1]})"
            )
        raise ValueError(
            f"{where}: duplicate timestamp {times[i]} falls in the same "
            f"{_PERIOD_NAME[f.unit]} as {times[i - 1]} on line {lines[i - 1]}"
        )
