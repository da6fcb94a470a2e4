"""The numerically solved directions of planar and radial flows reach the promised precision."""

from __future__ import annotations

import pytest
import torch

from seqflow.transforms import Planar, Radial


def _hard_planar(dtype) -> Planar:
    """A planar layer close to non-invertibility: w.u_hat near -1 and a large |u|."""
    torch.manual_seed(0)
    layer = Planar(4).to(dtype)
    with torch.no_grad():
        layer.w.copy_(torch.tensor([2.0, -1.0, 0.5, 1.0]))
        layer.u.copy_(-3.0 * layer.w / layer.w.square().sum())  # w.u = -3 -> w.u_hat ~ -0.95
        layer.b.fill_(0.3)
    return layer


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-10)])
def test_planar_solve_precision(dtype, tol):
    layer = _hard_planar(dtype)
    assert -1 < float((layer.w @ layer.u_hat()).detach()) < -0.9
    z = torch.randn(2000, 4, dtype=dtype) * 3
    x, _ = layer.inverse(z)
    z_solved, _ = layer(x)
    scale = z.abs().max()
    assert (z_solved - z).abs().max() <= tol * max(1.0, float(scale))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-10)])
def test_radial_solve_precision(dtype, tol):
    torch.manual_seed(0)
    layer = Radial(3).to(dtype)
    with torch.no_grad():
        layer.alpha_raw.fill_(-2.0)  # small alpha: sharp contraction near z0
        layer.beta_raw.fill_(-4.0)  # beta close to -alpha
    z = torch.randn(2000, 3, dtype=dtype) * 2
    x, _ = layer.inverse(z)
    z_solved, _ = layer(x)
    assert (z_solved - z).abs().max() <= tol * max(1.0, float(z.abs().max()))


def test_planar_solution_is_differentiable_like_the_closed_form():
    """Gradients through the solved direction match autograd of an exact inverse."""
    layer = _hard_planar(torch.float64)
    x = torch.randn(5, 4, dtype=torch.float64)
    z, _ = layer(x)
    z.sum().backward()
    grad_solved = layer.w.grad.clone()
    layer.zero_grad()
    # Implicit function theorem: d z / d theta = -(d x / d z)^{-1} d x / d theta at fixed x.
    z0 = z.detach()
    total = torch.zeros_like(layer.w)
    for i in range(5):
        jac_i = torch.autograd.functional.jacobian(lambda v: layer.inverse(v[None])[0][0], z0[i])
        weights = torch.linalg.solve(jac_i.T, torch.ones(4, dtype=torch.float64))
        layer.zero_grad()
        x_i, _ = layer.inverse(z0[i : i + 1].detach())
        (x_i[0] @ weights).backward()
        total -= layer.w.grad
    torch.testing.assert_close(grad_solved, total, rtol=1e-6, atol=1e-8)
