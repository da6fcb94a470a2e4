"""The floored log-scale: its limits, and sequence MAF/IAF layers using it near the floor
(log-determinant against an autograd Jacobian, inverse, streaming against the naive path)."""

from __future__ import annotations

import math

import pytest
import torch

import seqflow.transforms as T
from seqflow.distributions import Flow, StandardNormal
from seqflow.nn import SequenceContext
from seqflow.train.config import ConfigError, config_from_dict
from seqflow.train.models import build_flow
from seqflow.transforms.elementwise import bound_log_scale, floored_log_scale, soft_clamp

SMALL = dict(residual_channels=4, skip_channels=4, blocks=2)


def test_floored_log_scale_stays_inside_its_limits_and_follows_raw_between_them():
    raw = torch.linspace(-200, 200, 40001, dtype=torch.float64)
    s = floored_log_scale(raw, -9.0, 6.0)
    assert bool((s >= -9.0).all())  # far below the floor, float64 rounds to it
    assert bool((s < 6.0 + torch.exp(torch.tensor(-15.0, dtype=torch.float64))).all())
    inner = (raw > -30) & (raw < 30)
    assert bool((s[inner] > -9.0).all())
    assert bool((s[inner][1:] > s[inner][:-1]).all())  # strictly increasing: one raw per scale
    assert float(s[0]) == pytest.approx(-9.0, abs=1e-12)
    # upper limit: floor + softplus(bound - floor) = bound + log(1 + exp(floor - bound))
    assert float(s[-1]) == pytest.approx(6.0 + math.log1p(math.exp(-15.0)), abs=1e-12)
    middle = (raw > -6) & (raw < 3)
    assert float((s[middle] - raw[middle]).abs().max()) < 0.05
    # the symmetric bound needs raw = -30 to reach log sigma = -5; the floored one needs -5.0x
    assert float(soft_clamp(torch.tensor(-30.0), 6.0)) == pytest.approx(-5.0)
    assert float(floored_log_scale(torch.tensor(-5.02), -9.0, 6.0)) == pytest.approx(-5.0,
                                                                                    abs=0.01)


def test_bound_log_scale_without_a_floor_is_the_symmetric_soft_clamp():
    raw = torch.randn(100) * 20
    torch.testing.assert_close(bound_log_scale(raw, 6.0), raw / (1 + raw.abs() / 6.0))
    layer = T.SequenceMAF(1, **SMALL)
    assert layer.log_scale_floor is None
    torch.testing.assert_close(layer.bound_log_scale(raw), soft_clamp(raw, 6.0))


def _near_floor(layer_cls, floor=-9.0, **kw):
    """A layer whose log-scales sit between -9 and -6 (the head bias pushes raw to -8)."""
    torch.manual_seed(0)
    layer = layer_cls(2, **SMALL, log_scale_floor=floor, **kw).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
        head = layer.conditioner.head_out
        head.bias[2:] = -8.0  # the raw log-scale half of (shift, raw)
    return layer.eval()


def _logdet_by_autograd(fn, one: torch.Tensor) -> torch.Tensor:
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view_as(one)).flatten(),
                                             one.flatten())
    return torch.linalg.slogdet(jac).logabsdet


@pytest.mark.parametrize("layer_cls", [T.SequenceMAF, T.SequenceIAF])
def test_floored_layers_have_the_autograd_logdet_and_invert(layer_cls):
    layer = _near_floor(layer_cls, cond_channels=2, upsample_factor=2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 6, generator=g, dtype=torch.float64) * 1e-3
    context = SequenceContext(torch.randn(2, 2, 3, generator=g, dtype=torch.float64), None)
    side = x if layer_cls is T.SequenceMAF else layer(x, context)[0]
    with torch.no_grad():
        _, log_scale = layer.params(side, context)
    assert float(log_scale.min()) < -7.0 and float(log_scale.min()) > -9.0  # past -6, not -9
    z, logdet = layer(x, context)
    back, logdet_inv = layer.inverse(z, context)
    torch.testing.assert_close(back, x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(logdet_inv, -logdet, rtol=1e-10, atol=1e-10)
    for i in range(2):
        ctx = SequenceContext(context.local[i:i + 1], None)
        expected = _logdet_by_autograd(lambda v: layer(v, ctx)[0], x[i:i + 1])  # noqa: B023
        torch.testing.assert_close(logdet[i], expected, rtol=1e-8, atol=1e-8)


def test_floored_streaming_matches_the_naive_sequential_path():
    layer = _near_floor(T.SequenceMAF)
    z = torch.randn(2, 2, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    streamed, logdet = layer.inverse(z)
    naive, naive_logdet = layer.naive_sequential(z)
    torch.testing.assert_close(streamed, naive, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logdet, naive_logdet, rtol=1e-10, atol=1e-10)


def test_config_builds_the_floor_and_refuses_a_positive_one():
    model = {"kind": "sequence_maf", "channels": 1, "steps": 2, "blocks": 2,
             "residual_channels": 4, "skip_channels": 4}
    flow = build_flow(config_from_dict({"model": {**model, "log_scale_floor": -9}}).model)
    assert [layer.log_scale_floor for layer in flow.transform.layers] == [-9.0, -9.0]
    default = build_flow(config_from_dict({"model": model}).model)
    assert [layer.log_scale_floor for layer in default.transform.layers] == [None, None]
    with pytest.raises(ConfigError, match="log_scale_floor"):
        config_from_dict({"model": {**model, "log_scale_floor": 1.0}})
    with pytest.raises(ValueError, match="log_scale_floor must be < 0"):
        T.SequenceMAF(1, **SMALL, log_scale_floor=0.5)


def test_input_scale_is_a_change_of_variables_in_front_of_the_stack():
    model = {"kind": "sequence_maf", "channels": 1, "steps": 2, "blocks": 2,
             "residual_channels": 4, "skip_channels": 4, "log_scale_floor": -9,
             "input_scale": 0.1}
    torch.manual_seed(0)
    flow = build_flow(config_from_dict({"model": model}).model).double()
    scaling, stack = flow.transform.transforms
    assert isinstance(scaling, T.Scaling) and isinstance(stack, T.SequenceStack)
    log_gain = float(scaling.log_scale.detach())
    assert log_gain == pytest.approx(math.log(10.0), rel=1e-6)  # float32 initialization
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = 0.1 * torch.randn(3, 1, 9, dtype=torch.float64)
    # log p(x) = log p_stack(g x) + 9 log g with g ~ 10 (the Jacobian of x -> g x)
    stack_flow = Flow(stack, StandardNormal(1))
    expected = stack_flow.log_prob(x * math.exp(log_gain)) + 9 * log_gain
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=1e-10, atol=1e-10)
