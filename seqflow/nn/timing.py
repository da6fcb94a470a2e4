"""Wall-clock seconds of repeated calls: the one timing helper of seqflow's timed reports.

:func:`call_seconds` times ``repeats`` calls of a function after ``warmup`` untimed ones and
returns every time and the last result; :func:`median_seconds` is the median of those times
(robust to the odd call slowed by other work on the machine). Times are
``time.perf_counter`` differences around the call alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def call_seconds(fn: Callable[[], R], repeats: int, warmup: int = 1) -> tuple[list[float], R]:
    """Seconds of each of ``repeats`` calls ``fn()`` after ``warmup`` untimed calls, and the
    result of the last call.

    >>> times, result = call_seconds(lambda: sum(range(100)), repeats=3)
    >>> len(times), result, all(t >= 0 for t in times)
    (3, 4950, True)
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    return statistics.median(call_seconds(fn, repeats, warmup)[0])
