"""STFT-based waveform metrics against numpy/scipy/librosa computations and exact identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.fft import dct
from scipy.signal import get_window

from seqflow.metrics import (
    log_spectral_distance,
    mel_cepstral_distortion,
    multi_resolution_stft_loss,
    multi_resolution_stft_terms,
)

SAMPLE_RATE = 16000
RESOLUTIONS = ((256, 64, 256), (512, 128, 400), (1024, 256, 1024))


def _signals(batch: int = 2, time: int = 8000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic-plus-noise targets and a perturbed prediction, float64 ``(batch, time)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(time) / SAMPLE_RATE
    target = np.stack(
        [
            sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
            + 0.05 * rng.standard_normal(time)
            for f0 in rng.uniform(100, 300, batch)
        ]
    )
    pred = 0.8 * target + 0.1 * rng.standard_normal(target.shape)
    return pred, target


def _numpy_power(x: np.ndarray, n_fft: int, hop: int, win_length: int) -> np.ndarray:
    """Centred, reflect-padded STFT power with a periodic Hann window: ``(freq, frames)``."""
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = get_window("hann", win_length, fftbins=True)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    starts = range(0, len(padded) - n_fft + 1, hop)
    frames = np.stack([padded[s : s + n_fft] * window for s in starts])
    return (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).T


def test_mr_stft_terms_match_numpy_definitions() -> None:
    pred, target = _signals()
    terms = multi_resolution_stft_terms(
        torch.from_numpy(pred), torch.from_numpy(target), RESOLUTIONS
    )
    for r, (n_fft, hop, win_length) in enumerate(RESOLUTIONS):
        for b in range(pred.shape[0]):
            s_hat = np.sqrt(np.maximum(_numpy_power(pred[b], n_fft, hop, win_length), 1e-7))
            s = np.sqrt(np.maximum(_numpy_power(target[b], n_fft, hop, win_length), 1e-7))
            sc = np.linalg.norm(s - s_hat) / np.linalg.norm(s)
            mag = np.mean(np.abs(np.log(s) - np.log(s_hat)))
            assert terms.spectral_convergence[r, b].item() == pytest.approx(sc, rel=1e-9)
            assert terms.log_magnitude[r, b].item() == pytest.approx(mag, rel=1e-9)
    loss = multi_resolution_stft_loss(torch.from_numpy(pred), torch.from_numpy(target), RESOLUTIONS)
    expected = (terms.spectral_convergence + terms.log_magnitude).mean(dim=0).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def test_mr_stft_of_scaled_signal_is_exact() -> None:
    # pred = a * target scales every magnitude by a: L_sc = |1 - a|, L_mag = |ln a|.
    _, target = _signals(seed=1)
    target_t = torch.from_numpy(target)
    gain = 0.6
    terms = multi_resolution_stft_terms(gain * target_t, target_t, RESOLUTIONS, eps=1e-30)
    torch.testing.assert_close(
        terms.spectral_convergence, torch.full_like(terms.spectral_convergence, 1 - gain)
    )
    torch.testing.assert_close(
        terms.log_magnitude, torch.full_like(terms.log_magnitude, -math.log(gain))
    )


def test_mr_stft_zero_for_identical_and_positive_otherwise() -> None:
    pred, target = _signals(seed=2)
    target_t = torch.from_numpy(target).float()
    assert multi_resolution_stft_loss(target_t.clone(), target_t).item() == 0.0
    assert multi_resolution_stft_loss(torch.from_numpy(pred).float(), target_t).item() > 0.1


def test_mr_stft_gradient_flows() -> None:
    pred, target = _signals(seed=3)
    pred_t = torch.from_numpy(pred).float().requires_grad_(True)
    multi_resolution_stft_loss(pred_t, torch.from_numpy(target).float()).backward()
    assert pred_t.grad is not None
    assert torch.isfinite(pred_t.grad).all()
    assert pred_t.grad.abs().sum() > 0
    # At the optimum (identical signals, silence included) the gradient is finite, not NaN.
    same = torch.from_numpy(target).float()
    same[:, :2000] = 0.0
    leaf = same.clone().requires_grad_(True)
    multi_resolution_stft_loss(leaf, same).backward()
    assert torch.isfinite(leaf.grad).all()


def test_lsd_matches_numpy() -> None:
    pred, target = _signals(seed=4)
    n_fft, hop = 512, 128
    lsd = log_spectral_distance(torch.from_numpy(pred), torch.from_numpy(target), n_fft, hop)
    for b in range(pred.shape[0]):
        db_hat = 10 * np.log10(np.maximum(_numpy_power(pred[b], n_fft, hop, n_fft), 1e-10))
        db = 10 * np.log10(np.maximum(_numpy_power(target[b], n_fft, hop, n_fft), 1e-10))
        expected = np.mean(np.sqrt(np.mean((db - db_hat) ** 2, axis=0)))
        assert lsd[b].item() == pytest.approx(expected, rel=1e-9)


def test_lsd_of_scaled_signal_is_gain_in_db() -> None:
    _, target = _signals(seed=5)
    target_t = torch.from_numpy(target)
    lsd = log_spectral_distance(0.5 * target_t, target_t, 512, 128, eps=1e-30)
    torch.testing.assert_close(lsd, torch.full_like(lsd, 20 * math.log10(2.0)))
    assert (log_spectral_distance(target_t, target_t, 512, 128) == 0).all()


def _mel_cepstra_librosa(x: np.ndarray, n_fft: int, hop: int, n_mels: int, n_cep: int):
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(
        y=x,
        sr=SAMPLE_RATE,
        n_fft=n_fft,
        hop_length=hop,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=n_mels,
    )
    log_mel = np.log(np.maximum(mel, 1e-10))
    # scipy's unnormalised DCT-II is 2 * sum_m x_m cos(pi d (m + 1/2) / M).
    return log_mel, dct(log_mel, type=2, axis=0)[1 : n_cep + 1] / (2 * n_mels)


def test_mcd_matches_librosa_mel_and_scipy_dct() -> None:
    pred, target = _signals(seed=6)
    n_fft, hop, n_mels, n_cep = 1024, 256, 80, 24
    mcd = mel_cepstral_distortion(
        torch.from_numpy(pred),
        torch.from_numpy(target),
        SAMPLE_RATE,
        n_fft=n_fft,
        hop_length=hop,
        n_mels=n_mels,
        n_cepstra=n_cep,
    )
    for b in range(pred.shape[0]):
        _, c_hat = _mel_cepstra_librosa(pred[b], n_fft, hop, n_mels, n_cep)
        _, c = _mel_cepstra_librosa(target[b], n_fft, hop, n_mels, n_cep)
        per_frame = 10 / np.log(10) * np.sqrt(2 * np.sum((c - c_hat) ** 2, axis=0))
        assert mcd[b].item() == pytest.approx(per_frame.mean(), rel=1e-5)
    assert (mcd > 0.5).all()


def test_mcd_with_all_cepstra_is_band_std_of_db_difference() -> None:
    # Parseval for the DCT-II: with D = M - 1 and c_0 dropped, MCD per frame is the standard
    # deviation over mel bands of 10 log10(P / P_hat).
    pred, target = _signals(seed=7)
    n_fft, hop, n_mels = 512, 128, 40
    mcd = mel_cepstral_distortion(
        torch.from_numpy(pred),
        torch.from_numpy(target),
        SAMPLE_RATE,
        n_fft=n_fft,
        hop_length=hop,
        n_mels=n_mels,
        n_cepstra=n_mels - 1,
    )
    for b in range(pred.shape[0]):
        log_hat, _ = _mel_cepstra_librosa(pred[b], n_fft, hop, n_mels, 1)
        log_ref, _ = _mel_cepstra_librosa(target[b], n_fft, hop, n_mels, 1)
        db_diff = 10 / np.log(10) * (log_ref - log_hat)
        assert mcd[b].item() == pytest.approx(db_diff.std(axis=0).mean(), rel=1e-5)


def test_mcd_zero_for_identical_and_gain_invariant() -> None:
    _, target = _signals(seed=8)
    target_t = torch.from_numpy(target)
    assert (mel_cepstral_distortion(target_t, target_t, SAMPLE_RATE) == 0).all()
    # A gain only moves c_0, which MCD excludes.
    scaled = mel_cepstral_distortion(0.3 * target_t, target_t, SAMPLE_RATE, eps=1e-30)
    torch.testing.assert_close(scaled, torch.zeros_like(scaled), atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    ("pred_shape", "target_shape", "match"),
    [((2, 4000), (2, 4001), "shapes differ"), ((4000,), (4000,), r"\(batch, time\)")],
)
def test_bad_shapes_raise(pred_shape, target_shape, match) -> None:
    with pytest.raises(ValueError, match=match):
        log_spectral_distance(torch.zeros(pred_shape), torch.zeros(target_shape), 512, 128)


def test_too_short_signal_raises() -> None:
    with pytest.raises(ValueError, match="n_fft // 2"):
        multi_resolution_stft_loss(torch.zeros(1, 1000), torch.zeros(1, 1000))
