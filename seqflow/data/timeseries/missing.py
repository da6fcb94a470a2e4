"""Missing values: filling the unobserved entries of a series."""

from __future__ import annotations

import numpy as np


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
