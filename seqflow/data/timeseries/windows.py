"""Windows of a series for training, validation and backtest testing, as torch tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seqflow.data.splits import SPLITS
from seqflow.data.timeseries.backtest import backtest_windows, check_length
from seqflow.data.timeseries.calendar import calendar_feature_names, calendar_features
from seqflow.data.timeseries.missing import fill_missing
from seqflow.data.timeseries.scaling import (
    SCALINGS,
    mean_abs_scale,
    standard_scale,
    window_scale,
)
from seqflow.data.timeseries.series import Series


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
