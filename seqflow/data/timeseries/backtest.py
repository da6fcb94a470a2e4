"""The rolling-origin backtest protocol: where the test windows of a series lie."""

from __future__ import annotations

import numpy as np

from seqflow.data.timeseries.series import Series


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
