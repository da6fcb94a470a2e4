"""F0 metrics on signals of known pitch (pYIN resolution is 10 cents)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqflow.metrics import f0_metrics

pytest.importorskip("librosa")

SAMPLE_RATE = 16000


def _sine(freq: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_rmse_between_two_tones_is_their_frequency_gap() -> None:
    result = f0_metrics(_sine(230.0), _sine(220.0), SAMPLE_RATE)
    assert result.vuv_error_rate == 0.0
    assert result.voiced_both == result.frames > 0
    # One 10-cent pYIN bin at 230 Hz is about 1.3 Hz.
    assert result.rmse_hz == pytest.approx(10.0, abs=1.4)
    assert result.rmse_cents == pytest.approx(1200 * math.log2(230 / 220), abs=10.0)


def test_identical_tones_give_zero_error() -> None:
    tone = _sine(180.0)
    result = f0_metrics(tone, tone.copy(), SAMPLE_RATE)
    assert (result.rmse_hz, result.rmse_cents, result.vuv_error_rate) == (0.0, 0.0, 0.0)


def test_tone_against_noise_disagrees_on_voicing() -> None:
    noise = 0.5 * np.random.default_rng(0).standard_normal(int(0.5 * SAMPLE_RATE))
    result = f0_metrics(noise, _sine(220.0), SAMPLE_RATE)
    assert result.vuv_error_rate > 0.9
    if result.voiced_both == 0:
        assert math.isnan(result.rmse_hz) and math.isnan(result.rmse_cents)


def test_rmse_uses_only_frames_voiced_in_both() -> None:
    # The prediction falls silent halfway: those frames count as V/UV errors and are left out
    # of the RMSE, which stays the 10 Hz gap of the voiced half.
    pred = _sine(230.0, seconds=1.0)
    pred[len(pred) // 2 :] = 0.0
    result = f0_metrics(pred, _sine(220.0, seconds=1.0), SAMPLE_RATE)
    assert result.vuv_error_rate == pytest.approx(0.5, abs=0.1)
    assert 0.4 * result.frames < result.voiced_both < 0.6 * result.frames
    assert result.rmse_hz == pytest.approx(10.0, abs=1.4)


def test_invalid_arguments_raise() -> None:
    tone = _sine(220.0)
    with pytest.raises(ValueError, match="shapes differ"):
        f0_metrics(tone, tone[:-1], SAMPLE_RATE)
    with pytest.raises(ValueError, match="two periods"):
        f0_metrics(tone, tone, SAMPLE_RATE, f_min=65.0, frame_length=256)
    with pytest.raises(ValueError, match=r"\(time,\)"):
        f0_metrics(tone[None], tone[None], SAMPLE_RATE)
