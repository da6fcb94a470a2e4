"""Linear prediction from a log-mel against AR processes with known coefficients.

An AR(p) process ``x_t = sum_k a_k x_{t-k} + sigma e_t`` has the spectral density
``sigma^2 / |1 - sum_k a_k exp(-i w k)|^2``; its autocorrelation (inverse FFT of the density)
must give back ``a`` and ``sigma^2`` through Levinson-Durbin. Pre-emphasis, the fixed predictor
``x_t - alpha x_{t-1}``, is the order-1 case: at any higher order the extra coefficients are
zero.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqflow.data.features import LogMel, MelConfig
from seqflow.data.linear_prediction import (
    LinearPredictionConfig,
    MelLinearPrediction,
    filter_weights,
    levinson_durbin,
    predictor_to_reflection,
    reflection_to_predictor,
)
from seqflow.transforms.linear_prediction import predict

CORPUS = Path(os.environ.get("SEQFLOW_SPEECH_CORPUS", "/work/wt-results/data/speech/asterisk"))


def ar_from_poles(radii: list[float], angles: list[float]) -> np.ndarray:
    """Predictor coefficients of an AR process with complex-conjugate pole pairs."""
    poly = np.array([1.0])
    for r, w in zip(radii, angles, strict=True):
        poly = np.convolve(poly, [1.0, -2 * r * np.cos(w), r * r])
    return -poly[1:]  # A(z) = 1 - sum a_k z^-k


def ar_density(a: np.ndarray, sigma2: float, n_fft: int) -> torch.Tensor:
    """``sigma^2 / |A(e^{iw})|^2`` on the ``n_fft // 2 + 1`` bins of a real FFT."""
    w = 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft
    k = np.arange(1, len(a) + 1)
    response = 1 - (a[None, :] * np.exp(-1j * np.outer(w, k))).sum(1)
    return torch.from_numpy(sigma2 / np.abs(response) ** 2)


def test_ar_process_is_recovered_from_its_own_power_spectrum():
    a = ar_from_poles([0.95, 0.8, 0.6], [0.3, 1.1, 2.4])  # AR(6), resonances like formants
    sigma2 = 0.37
    power = ar_density(a, sigma2, 1024)
    lp = MelLinearPrediction(MelConfig(), LinearPredictionConfig(
        order=6, lag_window_hz=0.0, white_noise=1e-15))
    r = lp.autocorrelation(power)
    got, k, error = levinson_durbin(r, 6)
    np.testing.assert_allclose(got.numpy(), a, rtol=0, atol=1e-9)
    assert abs(float(error) - sigma2) < 1e-9
    assert bool((k.abs() < 1).all())
    # at a higher order the extra coefficients vanish and the error power stays sigma^2
    got, _, error = levinson_durbin(lp.autocorrelation(power).new_tensor(
        torch.fft.irfft(power, n=1024)[:11].numpy()), 10)
    np.testing.assert_allclose(got[6:].numpy(), 0.0, atol=1e-9)
    assert abs(float(error) - sigma2) < 1e-9


def test_reflection_and_predictor_coefficients_round_trip():
    torch.manual_seed(0)
    k = torch.rand(5, 12, dtype=torch.float64) * 1.98 - 0.99
    a = reflection_to_predictor(k)
    torch.testing.assert_close(predictor_to_reflection(a), k)
    # Levinson-Durbin's own reflection coefficients give its predictor back
    r = torch.fft.irfft(ar_density(ar_from_poles([0.9], [0.5]), 1.0, 256), n=256)[:13]
    a_ld, k_ld, _ = levinson_durbin(r, 12)
    torch.testing.assert_close(reflection_to_predictor(k_ld), a_ld)


def test_pre_emphasis_is_the_degenerate_first_order_case():
    alpha = 0.97
    r = alpha ** torch.arange(17, dtype=torch.float64)  # AR(1) autocorrelation, r_0 = 1
    a, k, error = levinson_durbin(r, 16)
    expected = torch.zeros(16, dtype=torch.float64)
    expected[0] = alpha
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(error, torch.tensor(1 - alpha**2, dtype=torch.float64))
    # the analysis filter with that predictor is the pre-emphasis filter x_t - alpha x_{t-1}
    x = torch.randn(2, 64, dtype=torch.float64)
    held = a.expand(2, 4, 16)  # four frames of 16 samples
    emphasized = x - F.pad(x, (1, 0))[:, :-1] * alpha
    torch.testing.assert_close(x - predict(x, held, 16), emphasized)


def test_nnls_weights_are_non_negative_and_fit_an_exact_mel():
    mel_config = MelConfig()
    fb = LogMel(mel_config).mel.mel_scale.fb.double()
    torch.manual_seed(0)
    c_true = torch.rand(3, mel_config.n_mels, dtype=torch.float64)
    mel = (fb @ c_true.T).T @ fb  # the mel of the magnitude spectrum fb @ c_true
    c = filter_weights(mel, fb, "nnls", iterations=2000)
    assert bool((c >= 0).all())
    torch.testing.assert_close(c @ fb.T @ fb, mel, rtol=1e-4, atol=1e-7)


def test_every_frame_is_stable_and_the_per_sample_filters_too():
    torch.manual_seed(0)
    mel_config = MelConfig()
    x = torch.randn(2, 8192) * torch.linspace(0, 1, 8192) ** 4  # silence to loud noise
    x[1] = torch.cumsum(x[1], 0) * 0.01  # a steep low-pass spectrum
    log_mel = LogMel(mel_config)(x)
    for interpolation in ("gain", "hold", "reflection"):
        lp = MelLinearPrediction(mel_config, LinearPredictionConfig(interpolation=interpolation))
        a, k, log_error = lp(log_mel)
        assert bool((k.abs() < 1).all()) and bool(torch.isfinite(log_error).all())
        per_sample, log_gain = lp.per_sample(k, log_error)
        assert per_sample.shape == (2, 16, 8192) and log_gain.shape == (2, 8192)
        assert bool((predictor_to_reflection(per_sample.transpose(1, 2)).abs() < 1).all())


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match="white_noise must be finite and > 0"):
        LinearPredictionConfig(white_noise=0.0)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        LinearPredictionConfig(interpolation="lsf")
    with pytest.raises(ValueError, match=r"expected a log-mel \(batch, 80, frames\)"):
        MelLinearPrediction(MelConfig())(torch.zeros(1, 40, 3))


@pytest.mark.slow
@pytest.mark.skipif(not (CORPUS / "wavs").is_dir(), reason=f"no speech corpus at {CORPUS}")
def test_every_frame_of_the_speech_corpus_gives_a_stable_filter():
    from seqflow.data.audio import load_audio

    mel_config = MelConfig()
    logmel = LogMel(mel_config)
    lp = MelLinearPrediction(mel_config, LinearPredictionConfig(order=24))
    frames = 0
    for path in sorted((CORPUS / "wavs").glob("*.wav")):
        audio = load_audio(path, mel_config.sample_rate)
        audio = audio[: audio.shape[0] // mel_config.hop_length * mel_config.hop_length]
        _, k, log_error = lp(logmel(audio[None]))  # refuses any |k| >= 1 itself
        assert bool((k.abs() < 1).all()) and bool(torch.isfinite(log_error).all()), path
        frames += k.shape[1]
    assert frames > 50_000
