"""One name per concept (docs/glossary.md): the old spellings are gone from public signatures."""

from __future__ import annotations

import inspect

import pytest

from seqflow.data.timeseries import future_times
from seqflow.forecasting import paths


def _parameters(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


@pytest.mark.parametrize("fn", [future_times, paths.sample_continuations])
def test_forecast_length_is_horizon(fn) -> None:
    names = _parameters(fn)
    assert "horizon" in names and "steps" not in names
