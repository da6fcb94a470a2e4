"""WaveGlow-style flow: squeeze, invertibility over 16000 samples, log-det vs autograd."""

from __future__ import annotations

import pytest
import torch
from sequence_helpers import (  # noqa: F401  (single_thread is an autouse fixture)
    jacobian_logabsdet,
    perturb,
    single_thread,
)

from seqflow import Flow, StandardNormal, WaveGlow
from seqflow.transforms.waveglow import squeeze, unsqueeze


def test_squeeze_roundtrip_and_layout():
    x = torch.arange(24.0).reshape(1, 2, 12)
    y = squeeze(x, 4)
    assert y.shape == (1, 8, 3)
    assert y[0, :4, 0].tolist() == [0.0, 1.0, 2.0, 3.0]  # consecutive samples of channel 0
    assert torch.equal(unsqueeze(y, 4), x)
    with pytest.raises(ValueError, match="divisible by 5"):
        squeeze(x, 5)


def test_invertible_over_16000_samples_with_conditioning(device):
    torch.manual_seed(0)
    flow = WaveGlow(1, squeeze_factor=8, steps=3, cond_channels=5, upsample_factor=16,
                    residual_channels=8, blocks=3)
    flow = perturb(flow, 0.05).eval().to(device)
    x = torch.randn(2, 1, 16000, device=device)
    mel = torch.randn(2, 5, 1000, device=device)
    with torch.no_grad():
        z, logdet = flow(x, mel)
        back, logdet_back = flow.inverse(z, mel)
    assert (z - x).abs().mean() > 0.05  # far from the identity
    torch.testing.assert_close(back, x, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logdet_back, -logdet, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("channels,factor", [(1, 4), (2, 2)])
def test_log_det_matches_autograd_jacobian_float64(channels, factor):
    torch.manual_seed(1)
    flow = WaveGlow(channels, squeeze_factor=factor, steps=2, cond_channels=3,
                    upsample_factor=2, residual_channels=4, blocks=2)
    flow = perturb(flow, 0.2).double().eval()
    x = torch.randn(1, channels, 8, dtype=torch.float64)
    mel = torch.randn(1, 3, 4, dtype=torch.float64)
    z, logdet = flow(x, mel)
    torch.testing.assert_close(logdet[0], jacobian_logabsdet(lambda v: flow(v, mel)[0], x))
    _, logdet_inv = flow.inverse(z, mel)
    expected = jacobian_logabsdet(lambda v: flow.inverse(v, mel)[0], z)
    torch.testing.assert_close(logdet_inv[0], expected)


def test_sample_length_from_mel_and_errors():
    """The sample length comes from the mel (5 frames x 8); the density of a sample, read back
    through the other direction, is the one it was drawn with (float64)."""
    transform = WaveGlow(1, 4, 2, cond_channels=3, upsample_factor=8, residual_channels=4,
                         blocks=2)
    flow = Flow(perturb(transform, 0.2), StandardNormal(1)).double().eval()
    mel = torch.randn(2, 3, 5, dtype=torch.float64)
    x, log_prob = flow.sample_and_log_prob(2, mel)
    assert x.shape == (2, 1, 40)
    torch.testing.assert_close(flow.log_prob(x, mel), log_prob, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="divisible by 4"):
        flow.transform(torch.zeros(1, 1, 10), torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="local features were not given"):
        flow.transform(torch.zeros(1, 1, 40))
    with pytest.raises(ValueError, match=">= 2"):
        WaveGlow(1, squeeze_factor=1)
