"""The averaged-power distance against a numpy STFT, exact identities and white-noise theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqflow.metrics import average_power_distance

RESOLUTIONS = ((256, 64, 256), (512, 128, 400))


def _numpy_average_power(x: np.ndarray, n_fft: int, hop: int, win_length: int) -> np.ndarray:
    """Time-averaged ``|STFT|^2`` ``(n_fft // 2 + 1,)`` of one waveform: periodic Hann window
    centred in ``n_fft``, reflect-padded centred frames."""
    n = np.arange(win_length)
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left:left + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + len(x) // hop
    spectra = [np.fft.rfft(padded[i * hop:i * hop + n_fft] * window) for i in range(frames)]
    return np.mean(np.abs(np.array(spectra)) ** 2, axis=0)


def test_matches_numpy_definition() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(6000) / 16000
    target = np.stack([np.sin(2 * np.pi * 180 * t) + 0.1 * rng.standard_normal(6000),
                       0.3 * rng.standard_normal(6000)])
    pred = 0.5 * target[::-1] + 0.05 * rng.standard_normal((2, 6000))
    eps = 1e-5
    expected = np.zeros(2)
    for n_fft, hop, win in RESOLUTIONS:
        for b in range(2):
            p = _numpy_average_power(pred[b], n_fft, hop, win)
            q = _numpy_average_power(target[b], n_fft, hop, win)
            expected[b] += np.mean((np.log(p + eps) - np.log(q + eps)) ** 2) / len(RESOLUTIONS)
    got = average_power_distance(torch.from_numpy(pred.copy()), torch.from_numpy(target),
                                 RESOLUTIONS, eps)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def test_zero_on_equal_power_spectra() -> None:
    """``-x`` has exactly the power spectrogram of ``x``, though every sample differs."""
    x = torch.randn(3, 4000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert float(average_power_distance(-x, x, RESOLUTIONS).abs().max()) < 1e-20
    assert float(average_power_distance(1.5 * x, x, RESOLUTIONS).min()) > 0.1


def test_gain_is_squared_log_power_ratio() -> None:
    """``pred = g * target`` with power far above ``eps``: every bin differs by ``ln g^2``."""
    x = torch.randn(2, 4000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for gain in (0.1, 0.5, 3.0):
        got = average_power_distance(gain * x, x, RESOLUTIONS, eps=1e-12)
        torch.testing.assert_close(got, torch.full_like(got, (2 * math.log(gain)) ** 2),
                                   rtol=1e-6, atol=0.0)


def test_white_noises_differ_by_their_variance_ratio() -> None:
    """Independent white noises of variances ``s1^2``, ``s2^2``: each averaged power spectrum
    is ``s^2 * sum(w^2)`` up to estimation noise, so the distance is ``(ln(s1^2 / s2^2))^2``."""
    g = torch.Generator().manual_seed(3)
    a = 0.4 * torch.randn(4, 2 ** 16, dtype=torch.float64, generator=g)
    b = 0.1 * torch.randn(4, 2 ** 16, dtype=torch.float64, generator=g)
    got = average_power_distance(a, b, ((512, 128, 512),))
    expected = math.log(16.0) ** 2
    assert float(got.mean()) == pytest.approx(expected, rel=0.03)


def test_finite_gradient_on_silence_and_louder_is_better_when_too_quiet() -> None:
    target = torch.randn(2, 3000, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    silent = torch.zeros(2, 3000, dtype=torch.float64, requires_grad=True)
    loss = average_power_distance(silent, target, RESOLUTIONS).sum()
    (grad,) = torch.autograd.grad(loss, silent)
    assert math.isfinite(float(loss.detach())) and bool(torch.isfinite(grad).all())
    both_silent = torch.zeros(2, 3000, dtype=torch.float64, requires_grad=True)
    zero = average_power_distance(both_silent, torch.zeros(2, 3000, dtype=torch.float64),
                                  RESOLUTIONS).sum()
    (grad,) = torch.autograd.grad(zero, both_silent)
    assert float(zero.detach()) == 0.0 and bool(torch.isfinite(grad).all())
    # a too-quiet copy of the target: the distance falls as its gain rises towards 1
    log_gain = torch.tensor(math.log(0.01), dtype=torch.float64, requires_grad=True)
    quiet = average_power_distance(torch.exp(log_gain) * target, target, RESOLUTIONS).sum()
    (slope,) = torch.autograd.grad(quiet, log_gain)
    assert float(slope) < 0


def test_bad_arguments_raise() -> None:
    x = torch.zeros(1, 4000)
    with pytest.raises(ValueError, match="eps must be finite and positive"):
        average_power_distance(x, x, RESOLUTIONS, eps=0.0)
    with pytest.raises(ValueError, match="resolutions is empty"):
        average_power_distance(x, x, ())
    with pytest.raises(ValueError, match="shapes differ"):
        average_power_distance(x, torch.zeros(1, 3000), RESOLUTIONS)
