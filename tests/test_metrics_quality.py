"""The one speech-quality record (``speech_quality``) and STFTs shared between spectral terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqflow.metrics import (
    PowerSpectra,
    SpeechQuality,
    average_power_distance,
    f0_metrics,
    log_spectral_distance,
    mel_cepstral_distortion,
    multi_resolution_stft_loss,
    multi_resolution_stft_terms,
    speech_quality,
)
from seqflow.metrics import audio as audio_metrics

SR = 16000
KEYS = {"mr_stft", "lsd_db", "mcd_db", "f0_rmse_hz", "f0_rmse_cents", "vuv_error_rate",
        "voiced_both", "rms_ratio"}


def _voiced(f0: float, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 5))
    return torch.from_numpy(0.2 * wave + 0.01 * rng.standard_normal(t.shape))


@pytest.fixture
def stft_calls(monkeypatch):
    """Counts the STFTs computed through ``seqflow.metrics.audio``."""
    calls = []
    real = torch.stft

    def counting(x, *args, **kwargs):
        calls.append((tuple(x.shape), kwargs.get("n_fft")))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(audio_metrics.torch, "stft", counting)
    return calls


def test_shared_spectra_equal_the_separate_computations(stft_calls) -> None:
    torch.manual_seed(0)
    target = torch.randn(3, 4000, dtype=torch.float64)
    pred = 0.7 * target + 0.2 * torch.randn_like(target)
    resolutions = ((256, 64, 256), (512, 128, 400), (1024, 256, 1024))
    separate_terms = multi_resolution_stft_terms(pred, target, resolutions)
    separate_power = average_power_distance(pred, target, resolutions)
    separate_lsd = log_spectral_distance(pred, target, 1024, 256)
    stft_calls.clear()
    spectra = PowerSpectra.of(pred, target, resolutions)
    shared_terms, shared_power = spectra.stft_terms(), spectra.average_power_distance()
    assert len(stft_calls) == 2 * len(resolutions)  # one STFT per resolution per signal
    torch.testing.assert_close(shared_terms.spectral_convergence,
                               separate_terms.spectral_convergence, rtol=0, atol=0)
    torch.testing.assert_close(shared_terms.log_magnitude, separate_terms.log_magnitude,
                               rtol=0, atol=0)
    torch.testing.assert_close(shared_power, separate_power, rtol=0, atol=0)
    torch.testing.assert_close(
        audio_metrics._log_spectral_distance(*spectra.at((1024, 256, 1024)), 1e-10),
        separate_lsd, rtol=0, atol=0)
    with pytest.raises(ValueError, match="not one of"):
        spectra.at((2048, 512, 2048))


def test_speech_quality_is_the_documented_settings_of_each_metric(stft_calls) -> None:
    reference = _voiced(180.0)
    pred = 0.5 * _voiced(190.0, seed=1)
    stft_calls.clear()
    quality = speech_quality(pred, reference, SR)
    assert len(stft_calls) == 6  # 3 MR-STFT resolutions x 2 signals; LSD and MCD reuse one
    assert isinstance(quality, SpeechQuality) and set(quality.to_dict()) == KEYS
    p, r = pred[None], reference[None]
    assert quality.mr_stft == pytest.approx(float(multi_resolution_stft_loss(p, r)), rel=1e-12)
    assert quality.lsd_db == pytest.approx(float(log_spectral_distance(p, r, 1024, 256)[0]),
                                           rel=1e-12)
    assert quality.mcd_db == pytest.approx(float(mel_cepstral_distortion(
        p, r, SR, n_fft=1024, hop_length=256, n_mels=80, n_cepstra=24, f_min=0.0,
        f_max=SR / 2)[0]), rel=1e-12)
    pitch = f0_metrics(pred.numpy(), reference.numpy(), SR, f_min=65.0, f_max=1047.0)
    assert quality.f0_rmse_hz == pytest.approx(pitch.rmse_hz) and 5 < quality.f0_rmse_hz < 15
    assert quality.vuv_error_rate == pitch.vuv_error_rate
    assert quality.voiced_both == pitch.voiced_both > 0
    assert quality.rms_ratio == pytest.approx(float(pred.square().mean().sqrt()
                                                    / reference.square().mean().sqrt()))


def test_speech_quality_of_identical_signals_and_without_f0() -> None:
    reference = _voiced(150.0)
    same = speech_quality(reference[None], reference.clone(), SR, f0=False)  # (1, T) too
    assert same.mr_stft == same.lsd_db == same.mcd_db == 0.0 and same.rms_ratio == 1.0
    rounded = speech_quality(reference.float(), reference, SR, f0=False)  # float32 is compared
    assert 0 < rounded.mcd_db < 1e-4 and rounded.rms_ratio == pytest.approx(1.0)  # in float64
    assert same.f0_rmse_hz is same.vuv_error_rate is same.voiced_both is None
    assert set(same.to_dict()) == KEYS  # one key set, with or without pitch


@pytest.mark.parametrize(("pred", "reference", "match"), [
    (torch.zeros(2000), torch.zeros(2001), "lengths differ"),
    (torch.zeros(1000), torch.zeros(1000), "fewer than the 1025"),
    (torch.zeros(2, 2000), torch.zeros(2, 2000), r"\(time,\) tensor"),
])
def test_speech_quality_refuses_bad_inputs(pred, reference, match) -> None:
    with pytest.raises(ValueError, match=match):
        speech_quality(pred, reference, SR)
