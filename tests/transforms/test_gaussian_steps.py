"""Per-step Gaussians of affine flows against autograd Jacobians and the flows' own densities.

For an IAF stack ``x = f(z)`` the Jacobian ``dx/dz`` must be lower-triangular with diagonal
``Sigma_t = exp(log_scale_t)``, and ``M_t = x_t - Sigma_t z_t`` must not depend on ``z_>=t``; for
a MAF stack scoring ``x`` the per-step Gaussians must reproduce ``Flow.log_prob``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqflow.distributions import Flow, StandardNormal
from seqflow.nn.context import SequenceContext
from seqflow.transforms import (
    ActNorm,
    AffineCoupling,
    Compose,
    Scaling,
    SequenceIAF,
    SequenceMAF,
    SequenceStack,
    check_gaussian_steps,
    gaussian_kl,
    generated_gaussian,
    scored_gaussian,
)

T, FACTOR, COND = 12, 4, 3


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: thread hand-offs would dominate on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _stack(layer: type, flows: int = 3) -> Compose:
    """Scaling + ActNorm + a conditioned stack of ``flows`` layers, all weights random."""
    torch.manual_seed(0)
    layers = [layer(1, residual_channels=4, skip_channels=4, blocks=3, cond_channels=COND,
                    log_scale_floor=-9.0) for _ in range(flows)]
    actnorm = ActNorm(1)
    actnorm.initialize(torch.randn(64, 1, 5) * 0.5 + 0.3)
    flow = Compose([Scaling(1), actnorm,
                    SequenceStack(layers, cond_channels=COND, upsample_factor=FACTOR)])
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow.double()


def _jacobian(fn, u: torch.Tensor) -> torch.Tensor:
    """``(T, T)`` Jacobian ``d fn(u)_t / d u_s`` of a batch-1 sequence map."""
    return torch.autograd.functional.jacobian(fn, u).reshape(T, T)


def _context(batch: int) -> SequenceContext:
    torch.manual_seed(1)
    return SequenceContext(torch.randn(batch, COND, T // FACTOR, dtype=torch.float64), None)


def test_iaf_stack_gaussian_matches_autograd_jacobian():
    flow = _stack(SequenceIAF)
    context = _context(1)
    z = torch.randn(1, 1, T, dtype=torch.float64)
    g = generated_gaussian(flow, z, context)
    x, _ = flow.inverse(z, context)
    torch.testing.assert_close(g.values, x)

    jac = _jacobian(lambda u: flow.inverse(u, context)[0], z)  # jac[t, s] = dx_t / dz_s
    assert torch.all(jac.triu(1) == 0), "x_t depends on a later z"
    torch.testing.assert_close(jac.diagonal(), g.log_scale.exp().flatten())
    torch.testing.assert_close(g.values, g.mean + g.log_scale.exp() * z)

    mean_jac = _jacobian(lambda u: generated_gaussian(flow, u, context).mean, z)
    assert torch.all(mean_jac.triu(0) == 0), "M_t depends on z_t or a later z"
    scale_jac = _jacobian(lambda u: generated_gaussian(flow, u, context).log_scale, z)
    assert torch.all(scale_jac.triu(0) == 0), "Sigma_t depends on z_t or a later z"
    assert mean_jac.tril(-1).abs().max() > 1e-3  # and it does depend on earlier noise


def test_maf_stack_gaussian_reproduces_flow_density():
    flow = _stack(SequenceMAF, flows=2)
    context = _context(3)
    x = 0.3 * torch.randn(3, 1, T, dtype=torch.float64)
    g = scored_gaussian(flow, x, context)
    z, _ = flow(x, context)
    torch.testing.assert_close(g.values, z)
    torch.testing.assert_close(g.log_prob(x), Flow(flow, StandardNormal(1)).log_prob(x, context))
    torch.testing.assert_close((x - g.mean) * torch.exp(-g.log_scale), z)

    one = _context(1)
    mean_jac = _jacobian(lambda u: scored_gaussian(flow, u, one).mean, x[:1])
    assert torch.all(mean_jac.triu(0) == 0), "the teacher's mean reads x_t or later"


def test_gaussian_kl_matches_numerical_integral():
    m_q, s_q, m_p, s_p = 0.3, -0.4, -0.2, 0.25
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    q = torch.distributions.Normal(m_q, torch.tensor(s_q, dtype=torch.float64).exp())
    p = torch.distributions.Normal(m_p, torch.tensor(s_p, dtype=torch.float64).exp())
    integrand = q.log_prob(grid).exp() * (q.log_prob(grid) - p.log_prob(grid))
    numeric = torch.trapezoid(integrand, grid)
    value = gaussian_kl(*(torch.tensor(v, dtype=torch.float64) for v in (m_q, s_q, m_p, s_p)))
    assert abs(float(value) - float(numeric)) < 1e-8
    assert float(gaussian_kl(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(1.0),
                             torch.tensor(0.5))) == 0.0


def test_refuses_layers_without_a_one_pass_gaussian():
    maf = _stack(SequenceMAF, flows=1)
    with pytest.raises(ValueError, match="SequenceMAF: its conditioner reads the output side"):
        generated_gaussian(maf, torch.randn(1, 1, T, dtype=torch.float64), _context(1))
    with pytest.raises(ValueError, match=r"SequenceIAF: .* forward \(normalizing\) direction"):
        check_gaussian_steps(_stack(SequenceIAF, flows=1), inverse=False)
    coupling = Compose([Scaling(2), AffineCoupling(2, hidden_features=4)])
    with pytest.raises(ValueError, match="AffineCoupling: not an elementwise or autoregressive"):
        scored_gaussian(coupling, torch.randn(3, 2))
    mixed = Compose([SequenceMAF(2, residual_channels=4, skip_channels=4, blocks=1,
                                 order=order) for order in ("natural", "reversed")])
    with pytest.raises(ValueError, match="order the channels differently"):
        check_gaussian_steps(mixed, inverse=False)
    check_gaussian_steps(Compose([SequenceMAF(2, residual_channels=4, skip_channels=4,
                                              blocks=1) for _ in range(2)]), inverse=False)
    with pytest.raises(ValueError, match="ActNorm: not initialized"):
        check_gaussian_steps(Compose([ActNorm(1), nn.Identity()]), inverse=True)
