"""The one timing helper: warm-up calls untimed, one time per repeat, the median of them."""

from __future__ import annotations

import statistics

import pytest

from seqflow.nn import timing


def test_warmup_is_untimed_and_every_repeat_is_timed(monkeypatch):
    clock = iter(range(100))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []

    def fn():
        calls.append(len(calls))
        next(clock)  # each call takes one tick (plus the tick of its start)
        return len(calls)

    times, last = timing.call_seconds(fn, repeats=3, warmup=2)
    assert len(calls) == 5 and last == 5
    assert times == [2, 2, 2]  # start, the call's tick, stop: the warm-up read no clock


def test_median_seconds_is_the_median_of_the_call_times(monkeypatch):
    durations = iter([5.0, 1.0, 3.0])
    now = [0.0]

    def fn():
        now[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    assert timing.median_seconds(fn, repeats=3, warmup=0) == statistics.median([5.0, 1.0, 3.0])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_repeats_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        timing.call_seconds(lambda: None, bad)
