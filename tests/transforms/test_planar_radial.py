"""The numerically solved directions of planar and radial flows reach the promised precision."""

from __future__ import annotations

import math

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


def _amortized(cls, seed: int = 0):
    """A layer with context-generated parameters whose hypernetwork is far from zero."""
    torch.manual_seed(seed)
    layer = cls(3, context_features=4).double()
    with torch.no_grad():
        layer.hyper.weight.normal_(0.0, 2.0)
    return layer


def _contexts(layer, scale: float) -> torch.Tensor:
    """Random contexts of a given scale, plus one that makes the raw ``w`` (planar) vanish or
    the raw ``alpha`` (radial) hugely negative."""
    g = torch.Generator().manual_seed(1)
    context = torch.randn(40, 4, generator=g, dtype=torch.float64) * scale
    weight = layer.hyper.weight.detach()
    if isinstance(layer, Planar):  # solve w_free + W_w c = 0 for c
        special = torch.linalg.lstsq(weight[:3], -layer.w.detach()[:, None]).solution.T
    else:  # push alpha_raw far below zero
        special = -1e3 * weight[3:4] / weight[3].square().sum()
    return torch.cat([context, special])


@pytest.mark.parametrize("cls", [Planar, Radial])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e2, 1e4])
def test_amortized_layers_keep_their_constraint_and_invert_for_any_context(cls, scale):
    layer = _amortized(cls)
    context = _contexts(layer, scale)
    batch = len(context)
    if cls is Planar:
        w, u_hat, _, s = layer.params(context, batch)
        assert ((w * u_hat).sum(-1) > -1 + 0.99 * layer.min_slope).all()  # w.u_hat > -1
        assert (s > 0.99 * layer.min_slope).all()  # the slope floor, up to the |w|^2 guard
        floor = math.log(0.99 * layer.min_slope)
    else:
        _, alpha, q = layer.params(context, batch)
        beta = q - alpha
        assert (alpha > 0).all() and (beta > -alpha).all()
        floor = 3 * math.log(layer.min_slope)
    z = torch.randn(batch, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x, logdet = layer.inverse(z, context)
    assert torch.isfinite(x).all() and torch.isfinite(logdet).all()
    assert (logdet >= floor).all()
    z_back, logdet_forward = layer(x, context)
    size = 1 + x.abs().amax(dim=1, keepdim=True)
    assert ((z_back - z).abs() <= 1e-9 * size).all()
    torch.testing.assert_close(logdet_forward, -logdet, rtol=1e-7, atol=1e-7)
    for i in range(batch):
        jac = torch.autograd.functional.jacobian(
            lambda v: layer.inverse(v[None], context[i:i + 1])[0][0], z[i])  # noqa: B023
        sign, expected = torch.linalg.slogdet(jac)
        assert sign == 1  # orientation-preserving: never folds over
        torch.testing.assert_close(logdet[i], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [Planar, Radial])
def test_amortized_rows_equal_free_layers_with_that_rows_parameters(cls):
    """Row i of an amortized layer is the free layer whose parameters are ``raw(context_i)``."""
    layer = _amortized(cls)
    context = torch.randn(5, 4, dtype=torch.float64)
    z = torch.randn(5, 3, dtype=torch.float64)
    x, logdet = layer.inverse(z, context)
    raw = (torch.cat([p.detach().reshape(-1) for p in layer.parameters()
                      if p is not layer.hyper.weight])[None]
           + context @ layer.hyper.weight.detach().T)
    for i in range(5):
        free = cls(3).double()
        with torch.no_grad():
            offset = 0
            for p in free.parameters():
                p.copy_(raw[i, offset:offset + p.numel()].reshape(p.shape))
                offset += p.numel()
        x_i, logdet_i = free.inverse(z[i:i + 1])
        torch.testing.assert_close(x_i[0], x[i])
        torch.testing.assert_close(logdet_i[0], logdet[i])


def test_amortized_layer_needs_its_context():
    layer = Planar(3, context_features=4)
    with pytest.raises(ValueError, match="called without context"):
        layer.inverse(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"context of shape \(batch=2, 4"):
        Radial(3, context_features=4).inverse(torch.randn(2, 3), torch.randn(2, 5))
