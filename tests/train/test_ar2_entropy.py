"""A Gaussian WaveNet (one sequence-MAF step, no context) learns a Gaussian AR(2) process down
to its entropy rate, computed in closed form.

For ``x_t = a1 x_{t-1} + a2 x_{t-2} + sigma e_t`` with ``e_t ~ N(0, 1)`` i.i.d. and stationary
(poles ``r exp(+-i w)`` inside the unit circle, ``a1 = 2 r cos w``, ``a2 = -r^2``), the entropy
rate is that of the innovation: ``h = 0.5 * log(2 pi e sigma^2)`` nats per sample. The
stationary variance is ``gamma_0 = sigma^2 (1 - a2) / ((1 + a2) ((1 - a2)^2 - a1^2))``
(Box & Jenkins); sigma is chosen so that ``gamma_0 = 1``.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.signal import lfilter

from seqflow.distributions import Flow, StandardNormal
from seqflow.transforms import SequenceMAF, SequenceStack

R, W = 0.9, math.pi / 8
A1, A2 = 2 * R * math.cos(W), -R * R
GAMMA0_PER_SIGMA2 = (1 - A2) / ((1 + A2) * ((1 - A2) ** 2 - A1**2))
SIGMA = GAMMA0_PER_SIGMA2 ** -0.5
ENTROPY_RATE = 0.5 * math.log(2 * math.pi * math.e * SIGMA**2)


def ar2(batch: int, length: int, generator: torch.Generator, burn_in: int = 300) -> torch.Tensor:
    """``(batch, 1, length)`` stationary AR(2) paths (the burn-in forgets the zero start)."""
    e = torch.randn(batch, length + burn_in, generator=generator, dtype=torch.float64) * SIGMA
    x = lfilter([1.0], [1.0, -A1, -A2], e.numpy(), axis=1)  # the AR(2) recursion
    return torch.from_numpy(x[:, burn_in:]).unsqueeze(1).float()


def test_the_closed_form_matches_the_simulated_process():
    x = ar2(8, 20000, torch.Generator().manual_seed(5)).double()[:, 0]
    assert float(x.var()) == pytest.approx(1.0, rel=0.05)  # gamma_0 = 1 by the choice of sigma
    innovation = x[:, 2:] - A1 * x[:, 1:-1] - A2 * x[:, :-2]
    gaussian_nll = (0.5 * math.log(2 * math.pi) + math.log(SIGMA)
                    + 0.5 * innovation.pow(2).mean() / SIGMA**2)
    assert float(gaussian_nll) == pytest.approx(ENTROPY_RATE, abs=0.01)


@pytest.mark.slow
def test_a_tiny_gaussian_wavenet_reaches_the_entropy_rate_of_an_ar2_process():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train, test = ar2(64, 512, generator), ar2(4, 8192, generator)
    flow = Flow(SequenceStack([SequenceMAF(1, residual_channels=8, skip_channels=16,
                                           blocks=2, log_scale_floor=-9.0)]),
                StandardNormal(1))
    assert flow.transform.receptive_field >= 3  # sees x_{t-1} and x_{t-2}
    steps = 300
    optimizer = torch.optim.Adam(flow.parameters(), 3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        batch = train[torch.randint(0, len(train), (8,), generator=generator)]
        loss = -flow.log_prob(batch).mean() / batch.shape[-1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        nll = -float(flow.log_prob(test).double().sum()) / test.numel()
    # A model cannot beat the process (up to sampling noise of 32768 test samples, ~0.005).
    assert nll == pytest.approx(ENTROPY_RATE, abs=0.02), (nll, ENTROPY_RATE)
