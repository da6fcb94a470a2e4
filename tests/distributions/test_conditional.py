"""Conditional posteriors: the context-dependent Gaussian base and one Flow over amortized
planar, radial and IAF layers."""

from __future__ import annotations

import pytest
import torch

from seqflow import ConditionalDiagonalNormal, Flow
from seqflow.transforms import IAF, Compose, Planar, Radial, Reverse


def _perturbed(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def test_log_prob_matches_torch_normal_with_the_heads_parameters():
    q = _perturbed(ConditionalDiagonalNormal(3, context_features=5)).double()
    h = torch.randn(7, 5, dtype=torch.float64)
    z = torch.randn(7, 3, dtype=torch.float64)
    out = q.head(h)
    reference = torch.distributions.Normal(out[:, :3], out[:, 3:].exp()).log_prob(z).sum(1)
    torch.testing.assert_close(q.log_prob(z, h), reference)


def test_samples_have_the_heads_moments_and_their_own_log_density():
    q = _perturbed(ConditionalDiagonalNormal(2, context_features=3)).double()
    h = torch.randn(1, 3, dtype=torch.float64).expand(200_000, 3)
    z, log_q = q.sample_and_log_prob(len(h), h)
    torch.testing.assert_close(log_q, q.log_prob(z, h))
    loc, log_scale = q.params(h[:1], 1)
    torch.testing.assert_close(z.mean(0), loc[0], atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), log_scale[0].exp(), atol=0.02, rtol=0)


def _posterior(kind: str, latent: int = 3, hidden: int = 4) -> Flow:
    torch.manual_seed(1)
    layers = {
        "planar": [Planar(latent, context_features=hidden) for _ in range(3)],
        "radial": [Radial(latent, context_features=hidden) for _ in range(3)],
        "iaf": [IAF(latent, hidden_features=8, context_features=hidden), Reverse(latent),
                IAF(latent, hidden_features=8, context_features=hidden)],
        "mixed": [Planar(latent, context_features=hidden), Radial(latent),
                  IAF(latent, hidden_features=8, context_features=hidden)],
    }[kind]
    return _perturbed(Flow(Compose(layers), ConditionalDiagonalNormal(latent, hidden))).double()


@pytest.mark.parametrize("kind", ["planar", "radial", "iaf", "mixed"])
def test_flow_posterior_scores_its_samples_like_its_normalizing_direction(kind):
    """``sample_and_log_prob`` (generative direction, one pass) agrees with ``log_prob``
    (normalizing direction: planar Newton solve, radial quadratic, IAF sequential)."""
    flow = _posterior(kind)
    h = torch.randn(64, 4, dtype=torch.float64)
    z, log_q = flow.sample_and_log_prob(64, h)
    assert z.shape == (64, 3) and log_q.shape == (64,)
    torch.testing.assert_close(log_q, flow.log_prob(z, h), rtol=1e-8, atol=1e-8)
    log_q.sum().backward()  # reparameterized: gradients reach the context heads
    assert all(p.grad is not None for p in flow.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", ["planar", "radial", "iaf"])
def test_flow_posterior_is_normalized_for_each_context(kind):
    """Each context defines a normalized density: its integral over a box (2-D grid) equals the
    fraction of its samples that fall in the box."""
    flow = _posterior(kind, latent=2)
    axis = torch.linspace(-6, 6, 161, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    step = float(axis[1] - axis[0])
    for h in torch.randn(2, 4, dtype=torch.float64):
        with torch.no_grad():
            mass = float(flow.log_prob(grid, h.expand(len(grid), 4)).exp().sum()) * step**2
            z = flow.sample(50_000, h.expand(50_000, 4))
        inside = float((z.abs() <= 6 + step / 2).all(dim=1).double().mean())
        assert inside > 0.5
        assert mass == pytest.approx(inside, abs=5e-3)


def test_bad_context_is_named():
    q = ConditionalDiagonalNormal(2, context_features=3)
    with pytest.raises(ValueError, match="called without context"):
        q.sample_and_log_prob(4)
    with pytest.raises(ValueError, match=r"context of shape \(batch=5, 3"):
        q.sample_and_log_prob(5, torch.randn(4, 3))
    with pytest.raises(ValueError, match="context_features must be >= 1"):
        ConditionalDiagonalNormal(2, context_features=0)
