"""One name per concept (docs/glossary.md): the old spellings are gone from public signatures."""

from __future__ import annotations

import inspect
from pathlib import Path

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
    from seqflow.nn.lstm import LSTMStream
    from seqflow.nn.made import MADEStream
    from seqflow.nn.wavenet import WaveNetStream
    from seqflow.train.objectives.distill import gaussian_steps_of
    from seqflow.transforms import check_gaussian_steps
    from seqflow.transforms.autoregressive import affine

    functions = [*_public_step_affine_methods(), check_gaussian_steps, gaussian_steps_of, affine,
                 MADEStream.run_sequence, WaveNetStream.run_sequence,
                 LSTMStream.run_sequence]
    for fn in functions:
        names = _parameters(fn)
        assert "inverse" in names, fn.__qualname__
        assert not names & {"generate", "direction", "sampling", "scoring"}, fn.__qualname__


OLD_SPELLINGS = {
    "hop": "hop_length", "fmin": "f_min", "fmax": "f_max", "win": "win_length",
    "num": "num_samples", "generate": "inverse",
}


def _public_callables():
    """Every public function, method and class constructor defined in a seqflow module."""
    import importlib
    import pkgutil

    import seqflow

    for info in pkgutil.walk_packages(seqflow.__path__, "seqflow."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and (attr == "__init__"
                                                       or not attr.startswith("_")):
                        yield f"{module.__name__}.{name}.{attr}", member


def test_old_spellings_are_gone_from_public_signatures() -> None:
    found = [f"{where}({parameter} -> {OLD_SPELLINGS[parameter]})"
             for where, fn in _public_callables()
             for parameter in _parameters(fn) if parameter in OLD_SPELLINGS]
    assert not found, found


def test_forecasting_and_timeseries_never_call_the_horizon_steps() -> None:
    found = [where for where, fn in _public_callables()
             if where.startswith(("seqflow.forecasting", "seqflow.data.timeseries"))
             and "steps" in _parameters(fn)]
    assert not found, found


def test_audio_and_sample_count_spellings() -> None:
    from seqflow.data import sources
    from seqflow.metrics import audio
    from seqflow.train import inference

    assert {"hop_length", "win_length"} <= _parameters(audio.power_spectrogram)
    assert "hop_length" in _parameters(audio.log_spectral_distance)
    assert {"hop_length", "f_min", "f_max"} <= _parameters(audio.mel_cepstral_distortion)
    assert {"f_min", "f_max", "hop_length"} <= _parameters(audio.f0_metrics)
    for fn in (inference.sample_run, inference.sample_chunks, sources.write_sample_chunks):
        assert "num_samples" in _parameters(fn)


def test_every_test_module_has_a_basename_of_its_own():
    """pytest imports test modules by basename (there are no ``__init__.py`` files under
    ``tests/``), so two files of one name in different folders stop the whole collection."""
    tests = Path(__file__).resolve().parent
    names = [path.name for path in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
