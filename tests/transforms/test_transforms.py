"""Property tests of every classic transform, against mathematics."""

from __future__ import annotations

import pytest
import torch
from transform_cases import CASES, SEQUENCE_CASES, Case, perturbed

from seqflow import Flow, StandardNormal
from seqflow.transforms import ActNorm, Compose

IDS = [c.name for c in CASES]


def _data(batch, features, dtype, device, sequence=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, features, 6) if sequence else (batch, features)
    return (torch.randn(shape, generator=g, dtype=dtype) * 1.5).to(device)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_round_trip_both_directions(case: Case, dtype, tol, device):
    t = perturbed(case, 5, dtype=dtype, device=device)
    x = _data(16, 5, dtype, device)
    z, _ = t(x)
    x_back, _ = t.inverse(z)
    torch.testing.assert_close(x_back, x, rtol=tol, atol=tol)
    z2, _ = t(t.inverse(x)[0])
    torch.testing.assert_close(z2, x, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", SEQUENCE_CASES, ids=[c.name for c in SEQUENCE_CASES])
def test_round_trip_sequences(case: Case, device):
    t = perturbed(case, 4, device=device, sequence=True)
    x = _data(3, 4, torch.float64, device, sequence=True)
    z, ld = t(x)
    assert z.shape == x.shape and ld.shape == (3,)
    x_back, ld_inv = t.inverse(z)
    torch.testing.assert_close(x_back, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ld, -ld_inv, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_logdet_is_minus_inverse_logdet(case: Case, device):
    t = perturbed(case, 5, device=device)
    x = _data(16, 5, torch.float64, device)
    z, ld = t(x)
    _, ld_inv = t.inverse(z)
    torch.testing.assert_close(ld, -ld_inv, rtol=1e-9, atol=1e-9)


def _autograd_logdets(fn, inputs: torch.Tensor) -> torch.Tensor:
    values = []
    for row in inputs:
        jac = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], row)
        jac = jac.reshape(row.numel(), row.numel())
        values.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(values)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("features", [1, 2, 5])
def test_logdet_matches_autograd_jacobian(case: Case, features: int, device):
    t = perturbed(case, features, device=device)
    x = _data(4, features, torch.float64, device)
    _, ld = t(x)
    torch.testing.assert_close(ld, _autograd_logdets(t, x), rtol=1e-7, atol=1e-7)
    _, ld_inv = t.inverse(x)
    torch.testing.assert_close(ld_inv, _autograd_logdets(t.inverse, x), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("case", SEQUENCE_CASES, ids=[c.name for c in SEQUENCE_CASES])
def test_sequence_logdet_matches_autograd_jacobian(case: Case, device):
    t = perturbed(case, 3, device=device, sequence=True)
    x = _data(2, 3, torch.float64, device, sequence=True)[..., :4]
    _, ld = t(x)
    torch.testing.assert_close(ld, _autograd_logdets(t, x), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_batch_independence(case: Case, device):
    t = perturbed(case, 3, device=device)
    x = _data(8, 3, torch.float64, device)
    z, ld = t(x)
    for i in (0, 5):
        zi, ldi = t(x[i : i + 1])
        torch.testing.assert_close(zi[0], z[i], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ldi[0], ld[i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_propagate(case: Case, dtype, device):
    t = perturbed(case, 3, dtype=dtype, device=device)
    x = _data(4, 3, dtype, device)
    for fn in (t.forward, t.inverse):
        y, ld = fn(x)
        assert y.dtype == dtype and ld.dtype == dtype
        assert y.device.type == device.type and ld.device.type == device.type
        assert ld.shape == (4,)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_reach_every_parameter(case: Case, device):
    t = perturbed(case, 4, device=device).train()
    x = _data(32, 4, torch.float64, device).requires_grad_()
    for fn in (t.forward, t.inverse):
        t.zero_grad()
        y, ld = fn(x)
        (y.square().sum() + ld.sum()).backward()
        for name, p in t.named_parameters():
            assert p.grad is not None, f"{case.name}.{name} got no gradient"
            assert torch.isfinite(p.grad).all()
            if case.name != "BatchNormFlow" or fn == t.forward:
                assert p.grad.abs().sum() > 0, f"{case.name}.{name} has an all-zero gradient"
        assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_raises_actionable_errors(case: Case):
    t = perturbed(case, 3)
    with pytest.raises(ValueError, match="features|shape"):
        t(torch.randn(4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="rank|shape"):
        t(torch.randn(4, dtype=torch.float64))
    if not case.sequences:
        with pytest.raises(ValueError, match="rank"):
            t(torch.randn(4, 3, 2, dtype=torch.float64))


def test_flow_rejects_nan_and_inf_with_location():
    flow = Flow(perturbed(CASES[3], 3), StandardNormal(3)).double()
    x = torch.zeros(4, 3, dtype=torch.float64)
    x[2, 1] = float("nan")
    x[3, 0] = float("inf")
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\) \(1 NaN, 1 Inf\).*\(2, 1\)"):
        flow.log_prob(x)
    assert not torch.isfinite(flow.log_prob(x, validate=False)).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_round_trip(case: Case, device):
    original = perturbed(case, 4, device=device)
    torch.manual_seed(123)  # a different random initialization for the fresh instance
    fresh = case.build(4).to(device=device, dtype=torch.float64)
    fresh.load_state_dict(original.state_dict())
    fresh.eval()
    x = _data(6, 4, torch.float64, device)
    for a, b in ((original(x), fresh(x)), (original.inverse(x), fresh.inverse(x))):
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)


def test_loaded_actnorm_does_not_reinitialize():
    source = ActNorm(3)
    source(torch.randn(50, 3) * 4 + 2)  # data-dependent init in training mode
    loaded = ActNorm(3)
    loaded.load_state_dict(source.state_dict())
    loaded.train()
    other = torch.randn(50, 3) * 0.1 - 7
    torch.testing.assert_close(loaded(other)[0], source(other)[0])
    assert torch.equal(loaded.loc, source.loc)


def test_actnorm_initializes_to_unit_statistics():
    layer = ActNorm(3)
    x = torch.randn(500, 3, 7) * torch.tensor([1.0, 5.0, 0.2])[:, None] + 3
    z, _ = layer(x)
    torch.testing.assert_close(z.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2), unbiased=False), torch.ones(3), atol=1e-3,
                               rtol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_pass_directions_compile_without_graph_breaks(case: Case):
    t = perturbed(case, 3, dtype=torch.float32)
    x = _data(4, 3, torch.float32, "cpu")
    torch._dynamo.reset()
    for fn in (t.forward, t.inverse):
        compiled = torch.compile(fn, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x)[0], fn(x)[0])


def test_compose_sums_logdets_and_inverts_in_reverse_order():
    layers = [perturbed(c, 3) for c in CASES[2:6]]
    flow = Compose(layers)
    x = _data(5, 3, torch.float64, "cpu")
    z, ld = flow(x)
    expected, h = torch.zeros(5, dtype=torch.float64), x
    for layer in layers:
        h, part = layer(h)
        expected += part
    torch.testing.assert_close(z, h)
    torch.testing.assert_close(ld, expected)
    torch.testing.assert_close(flow.inverse(z)[0], x)
