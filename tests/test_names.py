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


def _public_step_affine_methods():
    from seqflow.transforms import (
        ActNorm,
        AutoregressiveAffine,
        Compose,
        Scaling,
        SequenceStack,
        Transform,
    )
    classes = [Transform, Compose, AutoregressiveAffine, Scaling, ActNorm, SequenceStack]
    return [getattr(cls, name) for cls in classes
            for name in ("step_affine", "check_step_affine")]


def test_direction_is_one_word_inverse() -> None:
    """Every public argument that picks a flow direction is ``inverse: bool`` (True: noise ->
    data, the generative direction; False: data -> noise, the normalizing one)."""
    from seqflow.nn.made import MADEStream
    from seqflow.nn.wavenet import WaveNetStream
    from seqflow.train.objectives.distill import gaussian_steps_of
    from seqflow.transforms import check_gaussian_steps
    from seqflow.transforms.autoregressive import affine

    functions = [*_public_step_affine_methods(), check_gaussian_steps, gaussian_steps_of, affine,
                 MADEStream.run_sequence, WaveNetStream.run_sequence]
    for fn in functions:
        names = _parameters(fn)
        assert "inverse" in names, fn.__qualname__
        assert not names & {"generate", "direction", "sampling", "scoring"}, fn.__qualname__
