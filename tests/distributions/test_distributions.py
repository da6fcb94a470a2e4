"""Distributions and Flow: normalization on a grid, sampling, reparameterization, context."""

from __future__ import annotations

import pytest
import torch
from transform_cases import CASES, Case

from seqflow import DiagonalNormal, Flow, StandardLogistic, StandardNormal
from seqflow.data import sample_toy
from seqflow.transforms import AffineCoupling, Compose, RandomPermutation

VECTOR_CASES = CASES  # every classic transform works on vectors


def _grid_integral(log_prob, dim: int, half_width: float = 10.0, points: int = 401) -> float:
    axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    step = float(axis[1] - axis[0])
    if dim == 1:
        grid = axis[:, None]
    else:
        grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        density = log_prob(grid).exp()
    return float(density.sum()) * step**dim


def _train(flow: Flow, data: torch.Tensor, steps: int = 30) -> None:
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    flow.train()
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (128,))]
        loss = -flow.log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    flow.eval()


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("case", VECTOR_CASES, ids=[c.name for c in VECTOR_CASES])
def test_trained_flow_integrates_to_one(case: Case, dim: int):
    torch.manual_seed(0)
    transform = Compose([case.build(dim), RandomPermutation(dim), case.build(dim)])
    flow = Flow(transform, DiagonalNormal(dim)).double()
    data = sample_toy("moons", 2000).double()[:, :dim]
    _train(flow, data)
    assert abs(_grid_integral(flow.log_prob, dim) - 1) < 1e-2


@pytest.mark.parametrize("base", [StandardNormal, DiagonalNormal, StandardLogistic])
def test_base_distributions_integrate_to_one(base):
    dist = base(1).double()
    if isinstance(dist, DiagonalNormal):
        with torch.no_grad():
            dist.loc.fill_(0.7)
            dist.log_scale.fill_(0.4)
    assert abs(_grid_integral(dist.log_prob, 1, half_width=30.0, points=6001) - 1) < 1e-4


@pytest.mark.parametrize("base", [StandardNormal, DiagonalNormal, StandardLogistic])
def test_sample_and_log_prob_agree(base):
    torch.manual_seed(0)
    flow = Flow(Compose([AffineCoupling(3), AffineCoupling(3, parity=1)]), base(3)).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x, log_p = flow.sample_and_log_prob(7)
    assert x.shape == (7, 3) and log_p.shape == (7,)
    torch.testing.assert_close(log_p, flow.log_prob(x), rtol=1e-9, atol=1e-9)


def test_base_samples_sequences_with_explicit_length():
    assert StandardNormal(2).sample(3, length=11).shape == (3, 2, 11)
    x = DiagonalNormal(2).sample(3, length=5)
    assert x.shape == (3, 2, 5)
    assert DiagonalNormal(2).log_prob(x).shape == (3,)


def test_samples_are_reparameterized():
    torch.manual_seed(0)
    flow = Flow(Compose([AffineCoupling(2), AffineCoupling(2, parity=1)]), DiagonalNormal(2))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    flow.rsample(64).square().mean().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_conditional_flow_uses_context():
    torch.manual_seed(0)
    flow = Flow(Compose([AffineCoupling(2, context_features=3),
                         AffineCoupling(2, parity=1, context_features=3)]), StandardNormal(2))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 2)
    c1, c2 = torch.randn(4, 3), torch.randn(4, 3)
    assert not torch.allclose(flow.log_prob(x, c1), flow.log_prob(x, c2))
    samples = flow.sample(4, context=c1)
    assert samples.shape == (4, 2)
    with pytest.raises(ValueError, match="num_samples=5 must equal the context batch"):
        flow.sample(5, context=c1)
    with pytest.raises(ValueError, match="without context"):
        flow.log_prob(x)


def test_base_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"expected shape \(batch, 3"):
        StandardNormal(3).log_prob(torch.zeros(2, 4))


@pytest.mark.parametrize("base", [StandardNormal, DiagonalNormal, StandardLogistic])
def test_distribution_follows_module_dtype(base):
    dist = base(2).double()
    assert dist.sample(3).dtype == torch.float64
