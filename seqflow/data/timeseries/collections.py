"""Collections of series for global forecasters: long-format files, folders of CSV files, and
windows drawn across the series of a collection.

A long-format file has one row per item and time step: an item column (``item_id``), a time
column (``timestamp``), the target column(s) (``target`` unless named) and optional covariate
columns. A folder holds one CSV file per item (the file name without ``.csv`` is the item id),
each with a time column and the same target and covariate columns. Every item is a
:class:`~seqflow.data.timeseries.Series` with its own start and length; all share one
frequency, inferred from the timestamps (:func:`~seqflow.data.timeseries.infer_frequency`) or
given. Missing values (empty or ``NA`` cells, and grid steps without a row) are unobserved.

:class:`CollectionWindows` cuts windows of ``context + horizon`` steps from the items, for
training (drawn across items, weighted by each item's number of window positions or uniformly
over items), validation and test (the last horizons of each item); :func:`future_inputs`
prepares the last ``context`` steps of every item for a forecast past its end.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seqflow.data.splits import SPLITS
from seqflow.data.timeseries.calendar import calendar_feature_names, calendar_features
from seqflow.data.timeseries.frequencies import (
    Frequency,
    infer_frequency,
    parse_freq,
    same_frequency,
    time_grid,
)
from seqflow.data.timeseries.missing import fill_missing
from seqflow.data.timeseries.scaling import Scale, mean_abs_scale, standard_scale, window_scale
from seqflow.data.timeseries.series import (
    Series,
    _parse_numbers,
    _parse_times,
    _series_on_grid,
)
from seqflow.nn.context import SequenceContext

logger = logging.getLogger(__name__)

# Scalings of one window from its own context part (no statistic of a whole series).
COLLECTION_SCALINGS = ("mean", "window")
# How training windows are spread over the items.
WINDOW_WEIGHTS = ("length", "uniform")


@dataclass
class SeriesCollection:
    """Items of one frequency with the same target and covariate columns.

    ``items`` the :class:`Series` (each with its own start and length; ``source`` names the
    file and the item); ``item_ids`` their ids, in the order of first appearance in the file
    (the global ids of an item embedding are positions in this tuple); ``freq`` the shared
    alias; ``source`` the file or folder; ``notes`` what reading did besides copying values
    (rows sorted by time, missing steps inserted).
    """

    items: list[Series]
    item_ids: tuple[str, ...]
    freq: str
    source: str
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.items or len(self.items) != len(self.item_ids):
            raise ValueError(f"{self.source}: {len(self.items)} series for "
                             f"{len(self.item_ids)} item ids; a collection needs at least one")
        if len(set(self.item_ids)) != len(self.item_ids):
            raise ValueError(f"{self.source}: item ids repeat")
        first = self.items[0]
        for name, series in zip(self.item_ids, self.items, strict=True):
            if (series.targets, series.covariate_names) != (first.targets, first.covariate_names):
                raise ValueError(
                    f"{self.source}: item {name!r} has targets {list(series.targets)} and "
                    f"covariates {list(series.covariate_names)}, item {self.item_ids[0]!r} "
                    f"{list(first.targets)} and {list(first.covariate_names)}")
            if not same_frequency(series.frequency, parse_freq(self.freq)):
                raise ValueError(f"{self.source}: item {name!r} has frequency {series.freq!r}, "
                                 f"the collection {self.freq!r}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def frequency(self) -> Frequency:
        return parse_freq(self.freq)

    @property
    def targets(self) -> tuple[str, ...]:
        return self.items[0].targets

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return self.items[0].covariate_names

    @property
    def num_variables(self) -> int:
        return len(self.targets)

    @property
    def lengths(self) -> np.ndarray:
        """``(items,)`` time steps of each item."""
        return np.array([s.length for s in self.items], dtype=np.int64)

    def feature_names(self) -> list[str]:
        """Names of the local context channels of :class:`CollectionWindows` items: calendar
        features, covariates, one observed flag per target."""
        return (calendar_feature_names(self.freq) + list(self.covariate_names)
                + [f"observed_{name}" for name in self.targets])


# --- reading ---------------------------------------------------------------------------------
def _read_csv_table(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, columns of cells and the 1-based file line of each data row."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        columns: list[list[str]] = [[] for _ in header]
        lines: list[int] = []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {reader.line_num}: {len(row)} fields, the header "
                                 f"has {len(header)}")
            for column, cell in zip(columns, row, strict=True):
                column.append(cell)
            lines.append(reader.line_num)
    if not header:
        raise ValueError(f"{path}: empty file; a header row is expected")
    if not lines:
        raise ValueError(f"{path}: no data rows")
    return header, columns, lines


def _read_parquet_table(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """A parquet file as the cells of :func:`_read_csv_table` (row ``r`` is named line
    ``r + 2``, as if a header came first)."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise ValueError(f"{path}: reading parquet needs pyarrow or fastparquet, and neither is "
                         "installed; pip install pyarrow, or give the data as CSV") from None
    header = [str(name).strip() for name in frame.columns]
    columns = [["" if v is None or v is pd.NaT else str(v) for v in frame[c].tolist()]
               for c in frame.columns]
    if not len(frame):
        raise ValueError(f"{path}: no data rows")
    return header, columns, list(range(2, len(frame) + 2))


def _columns(path: Path, header: list[str], item_column: str | None, time_column: str,
             targets: Sequence[str], covariates: Sequence[str]) -> tuple[list[str], list[str]]:
    """The target and covariate columns; every other column is refused."""
    fixed = [c for c in (item_column, time_column) if c is not None]
    targets = list(targets) or (["target"] if "target" in header else [])
    if not targets:
        raise ValueError(f"{path}: no column 'target'; name the target column(s) (data.targets), "
                         f"columns present: {', '.join(header)}")
    covariates = list(covariates)
    wanted = [*fixed, *targets, *covariates]
    repeated = sorted({c for c in wanted if wanted.count(c) > 1})
    if repeated:
        raise ValueError(f"{path}: column(s) {', '.join(map(repr, repeated))} requested twice")
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{path}: line 1: column(s) {', '.join(map(repr, missing))} not found; "
                         f"columns present: {', '.join(header)}")
    extra = [c for c in header if c not in wanted]
    if extra:
        raise ValueError(f"{path}: column(s) {', '.join(map(repr, extra))} are neither the item, "
                         "time, target nor covariate columns; name them as covariates "
                         "(data.covariates) or targets (data.targets), or drop them")
    return targets, covariates


@dataclass
class _Rows:
    """One item's rows, sorted by time: ``times`` ``(R,)``, ``numbers`` one ``(R,)`` array per
    target then covariate, and the rows' lines in the file."""

    label: str
    times: np.ndarray
    numbers: list[np.ndarray]
    lines: list[int]
    was_sorted: bool


def _sorted_rows(label: str, times: np.ndarray, numbers: list[np.ndarray], lines: list[int],
                 time_column: str) -> _Rows:
    order = np.argsort(times, kind="stable")
    was_sorted = bool((order == np.arange(len(order))).all())
    times = times[order]
    lines = [lines[i] for i in order]
    same = np.flatnonzero(np.diff(times.astype(np.int64)) == 0)
    if len(same):
        i = int(same[0]) + 1
        raise ValueError(f"{label}: line {lines[i]}, column {time_column!r}: duplicate timestamp "
                         f"{times[i]} (already on line {lines[i - 1]})")
    return _Rows(label, times, [n[order] for n in numbers], lines, was_sorted)


def _collection(source: str, names: list[str], rows: list[_Rows], time_column: str,
                targets: list[str], covariates: list[str], freq: str | None) -> SeriesCollection:
    given = freq is not None
    if freq is None:
        found: list[tuple[str, Frequency]] = [
            (name, infer_frequency(r.times)) for name, r in zip(names, rows, strict=True)
            if len(r.times) >= 2]
        if not found:
            raise ValueError(f"{source}: every item has a single timestamp; give the frequency "
                             "(data.freq)")
        # An item with missing steps may show a multiple of the others' step (3D among D).
        finest_name, finest = min(found, key=lambda pair: pair[1].n)
        for name, f in found:
            anchored = same_frequency(parse_freq(f.alias.replace(str(f.n), "", 1)),
                                      parse_freq(finest.alias.replace(str(finest.n), "", 1)))
            if f.n % finest.n or not anchored:
                raise ValueError(
                    f"{source}: item {name!r} has frequency {f.alias!r} (inferred from its "
                    f"timestamps) but item {finest_name!r} has {finest.alias!r}; one collection "
                    "has one frequency (give data.freq to read every item on one grid)")
        freq = finest.alias
    else:
        parse_freq(freq)
    items = [_series_on_grid(r.label, r.times, r.numbers, r.lines, time_column, targets,
                             covariates, freq, check_freq=given) for r in rows]
    notes = []
    unsorted = [name for name, r in zip(names, rows, strict=True) if not r.was_sorted]
    if unsorted:
        notes.append(f"rows of {len(unsorted)} item(s) were sorted by time (first: "
                     f"{unsorted[0]!r})")
    inserted = [s.length - len(r.times) for s, r in zip(items, rows, strict=True)]
    if sum(inserted):
        notes.append(f"inserted {sum(inserted)} missing step(s) on the {freq!r} grid in "
                     f"{sum(1 for n in inserted if n)} item(s), marked unobserved")
    for note in notes:
        logger.info("%s: %s", source, note)
    return SeriesCollection(items, tuple(names), freq, source, tuple(notes))


def _parsed(path: Path, header: list[str], cells: list[list[str]], lines: list[int],
            time_column: str, targets: list[str], covariates: list[str]
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    column = {name: cells[header.index(name)] for name in [time_column, *targets, *covariates]}
    times = _parse_times(column[time_column], path, time_column, lines)
    numbers = [_parse_numbers(column[name], path, name, lines) for name in [*targets, *covariates]]
    return times, numbers


def read_long_table(
    path: str | Path,
    item_column: str = "item_id",
    time_column: str = "timestamp",
    targets: Sequence[str] = (),
    covariates: Sequence[str] = (),
    freq: str | None = None,
) -> SeriesCollection:
    """Read a long-format CSV (or parquet, when pandas has a parquet engine) file.

    One row per item and time step; ``targets`` default to the column ``target``; every other
    column must be named in ``covariates``. Rows of an item may come in any order (they are
    sorted by time, and :attr:`SeriesCollection.notes` says so); a repeated timestamp within
    an item is refused. ``freq`` None infers each item's frequency from its timestamps
    (:func:`~seqflow.data.timeseries.infer_frequency`) and takes the finest one, which every
    other item's must be a multiple of on the same unit (an item with missing steps may show
    ``3D`` among daily items); items of another unit (``h`` among ``D``) are refused. Cells as in
    :func:`~seqflow.data.timeseries.read_series_csv`; errors are one line naming the file, the
    line, the item and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        header, cells, lines = _read_parquet_table(path)
    elif suffix == ".csv":
        header, cells, lines = _read_csv_table(path)
    else:
        raise ValueError(f"{path}: a long-format file ends in .csv or .parquet, not {suffix!r}")
    targets, covariates = _columns(path, header, item_column, time_column, targets, covariates)
    times, numbers = _parsed(path, header, cells, lines, time_column, targets, covariates)
    groups: dict[str, list[int]] = {}
    for row, cell in enumerate(cells[header.index(item_column)]):
        name = cell.strip()
        if not name:
            raise ValueError(f"{path}: line {lines[row]}, column {item_column!r}: empty item id")
        groups.setdefault(name, []).append(row)
    names, rows = list(groups), []
    for name, index in groups.items():
        take = np.array(index)
        rows.append(_sorted_rows(f"{path} item {name!r}", times[take],
                                 [n[take] for n in numbers], [lines[i] for i in index],
                                 time_column))
    return _collection(str(path), names, rows, time_column, targets, covariates, freq)


def read_series_folder(
    folder: str | Path,
    time_column: str = "timestamp",
    targets: Sequence[str] = (),
    covariates: Sequence[str] = (),
    freq: str | None = None,
) -> SeriesCollection:
    """Read every ``*.csv`` file of ``folder`` (sorted by name) as one item named by the file
    stem; columns, ordering and frequency as in :func:`read_long_table`, without an item
    column."""
    folder = Path(folder)
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise ValueError(f"{folder}: no .csv files in the folder")
    names, rows = [], []
    shared: tuple[list[str], list[str]] | None = None
    for file in files:
        header, cells, lines = _read_csv_table(file)
        used = _columns(file, header, None, time_column, targets, covariates)
        if shared is not None and used != shared:
            raise ValueError(f"{file}: targets {used[0]} and covariates {used[1]} differ from "
                             f"{files[0].name}'s {shared[0]} and {shared[1]}")
        shared = used
        times, numbers = _parsed(file, header, cells, lines, time_column, *used)
        names.append(file.stem)
        rows.append(_sorted_rows(str(file), times, numbers, lines, time_column))
    return _collection(str(folder), names, rows, time_column, *shared, freq)


def read_collection(
    path: str | Path,
    item_column: str = "item_id",
    time_column: str = "timestamp",
    targets: Sequence[str] = (),
    covariates: Sequence[str] = (),
    freq: str | None = None,
) -> SeriesCollection:
    """:func:`read_series_folder` for a folder, :func:`read_long_table` for a file."""
    if Path(path).is_dir():
        return read_series_folder(path, time_column, targets, covariates, freq)
    return read_long_table(path, item_column, time_column, targets, covariates, freq)


# --- windows ---------------------------------------------------------------------------------
def _forward_filled(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Each entry of ``values`` ``(T, D)`` replaced by the last observed value at or before
    it; NaN before a variable's first observation (no later value leaks backwards)."""
    steps = np.arange(len(values))[:, None]
    last = np.maximum.accumulate(np.where(observed, steps, -1), axis=0)
    filled = np.take_along_axis(values, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, filled, np.nan)


def _local_features(series: Series, end: int, where: str) -> np.ndarray:
    """Calendar features and user covariates ``(T, F)``; covariates are filled and
    standardized with the statistics of the steps before ``end``."""
    calendar = calendar_features(series.times, series.freq)
    user = series.covariates
    if user.shape[1]:
        given = ~np.isnan(user)
        user = fill_missing(user, given, f"{where} covariates")
        try:
            user = standard_scale(user, given, end).apply(user, var_axis=-1)
        except ValueError as err:
            raise ValueError(f"{where} covariates: {err}") from None
    return np.concatenate([calendar, user.astype(np.float32)], axis=1)


def _scale(raw: np.ndarray, seen: np.ndarray, scaling: str) -> Scale:
    return mean_abs_scale(raw, seen) if scaling == "mean" else window_scale(raw, seen)


def _window(filled: np.ndarray, observed: np.ndarray, features: np.ndarray, context: int,
            scaling: str) -> dict[str, np.ndarray]:
    """Scaled ``x`` ``(D, L)``, ``mask`` ``(D, L)``, ``local`` ``(F + D, L)``, ``scale`` and
    ``loc`` ``(D,)`` of one window: ``filled``/``observed`` ``(L, D)``, ``features`` ``(L, F)``,
    the first ``context`` steps the context part."""
    raw, mask = filled.T, observed.T
    scale = _scale(raw[:, :context], mask[:, :context], scaling)
    x = np.nan_to_num(scale.apply(raw.astype(np.float64)), nan=0.0)
    indicator = mask.astype(np.float32)
    indicator[:, context:] = 1.0
    return {"x": x.astype(np.float32), "mask": np.ascontiguousarray(mask),
            "local": np.concatenate([features.T, indicator], axis=0).astype(np.float32),
            "scale": scale.scale.astype(np.float32), "loc": scale.loc.astype(np.float32)}


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class CollectionWindows(Dataset):
    """Windows of ``context + horizon`` steps drawn across the items of a collection.

    For an item of ``T`` steps the last ``test_origins * horizon`` steps are its test
    horizons (origins ``T - (test_origins - k) * horizon``), the ``val_origins * horizon`` steps
    before them its validation horizons, and training windows lie entirely before its first
    validation origin. Items too short for one window of a split are left out of that split
    (:attr:`left_out` names them).

    ``split="train"``: item ``i`` draws, from ``numpy.random.default_rng([seed, i])``, first an
    item of the collection, then a window start uniformly among that item's window positions;
    ``weights="length"`` picks items in proportion to their number of window positions (every
    window position of the collection equally likely), ``"uniform"`` picks every usable item
    equally often. There are ``num_windows`` items (default: the number of window positions).
    ``split="val"``/``"test"``: one item per held-out origin of every item long enough.

    Each item: ``x`` ``(D, C + H)`` float32, values scaled per window (``scaling``: ``"mean"``,
    :func:`~seqflow.data.timeseries.mean_abs_scale`, or ``"window"``,
    :func:`~seqflow.data.timeseries.window_scale`, of the context part) and forward filled
    (0 before a variable's first observation); ``mask`` ``(D, C + H)`` bool, observed
    entries; ``context``: local features ``(F + D, C + H)`` (:meth:`SeriesCollection.feature_names`:
    calendar features, covariates standardized per item with the steps before its first
    held-out origin, one observed flag per target equal to ``mask`` on the context part and to
    1 on the horizon) or, with ``item_ids=True``, a :class:`~seqflow.nn.SequenceContext` of those
    features and the item's global id (its position in the collection) in the batches of
    :meth:`__getitems__`, which DataLoaders and the engine read; ``scale``, ``loc`` ``(D,)``;
    ``index``, ``start`` (the window's first step in its item) and ``item``.
    """

    def __init__(
        self,
        collection: SeriesCollection,
        context: int,
        horizon: int,
        *,
        split: str = "train",
        val_origins: int = 1,
        test_origins: int = 0,
        scaling: str = "window",
        weights: str = "length",
        num_windows: int | None = None,
        seed: int = 0,
        item_ids: bool = False,
    ):
        C, H = _check_positive("context", context), _check_positive("horizon", horizon)
        for name, value, choices in (("split", split, SPLITS),
                                     ("scaling", scaling, COLLECTION_SCALINGS),
                                     ("weights", weights, WINDOW_WEIGHTS)):
            if value not in choices:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
        for name, value in (("val_origins", val_origins), ("test_origins", test_origins)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        self.collection, self.context, self.horizon = collection, C, H
        self.split, self.scaling, self.seed, self.item_ids = split, scaling, int(seed), item_ids
        lengths = collection.lengths
        test_start = lengths - test_origins * H
        train_end = test_start - val_origins * H
        self.train_end = train_end
        self._filled = [_forward_filled(s.values, s.observed) for s in collection.items]
        self._features = [
            _local_features(s, int(max(e, 1)), s.source)
            for s, e in zip(collection.items, train_end, strict=True)]
        self.feature_names = collection.feature_names()
        if split == "train":
            self.num_starts = np.maximum(train_end - (C + H) + 1, 0)
            usable = self.num_starts > 0
            if not usable.any():
                raise ValueError(
                    f"{collection.source}: no item is long enough for one training window of "
                    f"context {C} + horizon {H} = {C + H} steps before its "
                    f"{val_origins + test_origins} held-out horizon(s); the longest has "
                    f"{int(lengths.max())} steps")
            weight = self.num_starts if weights == "length" else usable.astype(np.int64)
            self._cumulative = np.cumsum(weight.astype(np.float64))
            self.left_out = [collection.item_ids[i] for i in np.flatnonzero(~usable)]
            self._length = (int(self.num_starts.sum()) if num_windows is None
                            else _check_positive("num_windows", num_windows))
            self._windows: list[tuple[int, int]] = []
        else:
            if num_windows is not None:
                raise ValueError(f"num_windows applies to split='train' only, not {split!r}")
            first = test_start if split == "test" else train_end
            count = test_origins if split == "test" else val_origins
            self._windows = [(i, int(first[i]) + k * H - C)
                             for i in range(len(collection)) if first[i] >= C
                             for k in range(count)]
            self.left_out = [collection.item_ids[i] for i in np.flatnonzero(first < C)] if count \
                else []
            self._length = len(self._windows)

    def __len__(self) -> int:
        return self._length

    def window_of(self, index: int) -> tuple[int, int]:
        """``(item, start)`` of item ``index``: the collection item and the window's first step."""
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} {self.split} items")
        if self.split != "train":
            return self._windows[index]
        rng = np.random.default_rng([self.seed, index])
        u = rng.random() * self._cumulative[-1]
        item = int(np.searchsorted(self._cumulative, u, side="right"))
        item = min(item, len(self._cumulative) - 1)
        return item, int(rng.integers(self.num_starts[item]))

    def _arrays(self, index: int) -> dict:
        item, start = self.window_of(int(index))
        stop = start + self.context + self.horizon
        series = self.collection.items[item]
        window = _window(self._filled[item][start:stop], series.observed[start:stop],
                         self._features[item][start:stop], self.context, self.scaling)
        return {**window, "index": int(index), "start": start, "item": item}

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index], single=True)

    def __getitems__(self, indices: Sequence[int], single: bool = False) -> dict:
        """One collated batch: ``x``, ``mask`` ``(batch, D, C + H)``, ``context`` (local
        features ``(batch, F + D, C + H)``, with the items' global ids when ``item_ids``),
        ``scale``/``loc`` ``(batch, D)``, ``index``, ``start``, ``item`` ``(batch,)``;
        ``single`` gives one item without the batch axis, its ``context`` the local features
        only (the global id is its ``item``)."""
        parts = [self._arrays(i) for i in indices]

        def stack(key: str) -> torch.Tensor:
            return torch.from_numpy(np.stack([p[key] for p in parts]))

        batch = {key: stack(key) for key in ("x", "mask", "scale", "loc")}
        local = stack("local")
        for key in ("index", "start", "item"):
            batch[key] = torch.as_tensor([p[key] for p in parts], dtype=torch.long)
        if single:
            batch = {key: value[0] for key, value in batch.items()}
            batch["index"] = int(batch["index"])
            batch["context"] = local[0]
            return batch
        batch["context"] = (SequenceContext(local, batch["item"]) if self.item_ids else local)
        return batch


def future_inputs(
    collection: SeriesCollection, context: int, horizon: int, scaling: str
) -> dict:
    """The inputs of a forecast of ``horizon`` steps past the end of every item.

    Each item's last ``context`` steps are its history. Returns ``history`` ``(items, D, C)``
    scaled and forward filled (0 before a variable's first observation), ``local``
    ``(items, F + D, C + H)`` (the features of :class:`CollectionWindows`, calendar features of
    the future timestamps on the horizon), ``scale``/``loc`` ``(items, D)`` and ``times``
    ``(items, H)`` datetime64[us] continuing each item on the collection's frequency. Refuses,
    naming the item, a history shorter than ``context``; and collections with covariates, whose
    future values a long-format history does not hold.
    """
    C, H = _check_positive("context", context), _check_positive("horizon", horizon)
    if scaling not in COLLECTION_SCALINGS:
        raise ValueError(f"scaling={scaling!r} is not one of {', '.join(COLLECTION_SCALINGS)}")
    if collection.covariate_names:
        raise ValueError(f"{collection.source}: covariates "
                         f"{', '.join(collection.covariate_names)} would be needed on the "
                         "forecast horizon, and a history file does not hold their future "
                         "values; forecasting with covariates is not supported")
    short = np.flatnonzero(collection.lengths < C)
    if len(short):
        i = int(short[0])
        raise ValueError(f"{collection.source}: item {collection.item_ids[i]!r} has "
                         f"{collection.lengths[i]} steps, shorter than the model's context of "
                         f"{C} steps ({len(short)} item(s) that short)")
    parts, times = [], []
    for series in collection.items:
        T = series.length
        ahead = time_grid(series.times[-1], H + 1, series.freq)[1:]
        stamps = np.concatenate([series.times[T - C:], ahead])
        features = calendar_features(stamps, series.freq)
        filled = _forward_filled(series.values[T - C:], series.observed[T - C:])
        pad = np.full((H, series.num_variables), np.nan, dtype=filled.dtype)
        seen = np.concatenate([series.observed[T - C:],
                               np.zeros((H, series.num_variables), dtype=bool)])
        parts.append(_window(np.concatenate([filled, pad]), seen, features, C, scaling))
        times.append(ahead)
    return {"history": torch.from_numpy(np.stack([p["x"][:, :C] for p in parts])),
            "local": torch.from_numpy(np.stack([p["local"] for p in parts])),
            "scale": torch.from_numpy(np.stack([p["scale"] for p in parts])),
            "loc": torch.from_numpy(np.stack([p["loc"] for p in parts])),
            "times": np.stack(times)}
