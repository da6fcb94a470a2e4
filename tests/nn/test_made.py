"""MADE: masks, autoregressive property by exact Jacobian zeros, degree-sliced streaming."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from seqflow.nn import MADE, MaskedLinear

CONFIGS = [
    pytest.param(dict(order="natural"), id="natural"),
    pytest.param(dict(order="random", seed=7), id="random"),
    pytest.param(dict(order=[3, 0, 4, 1, 2]), id="explicit"),
    pytest.param(dict(order="random", seed=3, residual=True), id="residual"),
    pytest.param(dict(order="random", seed=1, context_features=3), id="context"),
    pytest.param(dict(order="reversed", context_features=2, residual=True, activation="tanh"),
                 id="context-residual-tanh"),
]
D = 5


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws its inputs from a fixed seed, independent of test order."""
    torch.manual_seed(0)


def randomized(made: MADE, seed: int = 0) -> MADE:
    """Replace the (partly zero) initialization by dense random weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in made.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.7)
    return made


def build(cfg: dict, device, params_per_feature: int = 3, hidden: int = 11) -> MADE:
    made = MADE(D, hidden_features=hidden, blocks=3, params_per_feature=params_per_feature,
                **cfg)
    return randomized(made.double().to(device))


def context_for(made: MADE, batch: int, device) -> torch.Tensor | None:
    if made.context_features is None:
        return None
    return torch.randn(batch, made.context_features, dtype=torch.float64, device=device)


def allowed(made: MADE) -> torch.Tensor:
    """``(D, D)`` boolean: output feature i may depend on input j iff degree(j) < degree(i)."""
    d = made.input_degrees.cpu()
    return d[:, None] > d[None, :]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_jacobian_is_exactly_zero_where_the_order_forbids(cfg, device):
    made = build(cfg, device)
    x = torch.randn(1, D, dtype=torch.float64, device=device)
    context = context_for(made, 1, device)
    jac = jacobian(lambda v: made.params(v, context), x)  # (1, P, D, 1, D)
    jac = jac[0, :, :, 0, :].cpu()  # (P, D_out, D_in)
    mask = allowed(made)
    assert torch.all(jac[:, ~mask] == 0), "dependence where the order forbids it"
    # Every allowed connection is used (no dead paths); tanh so no unit is locally inactive.
    smooth = build({**cfg, "activation": "tanh"}, device)
    jac = jacobian(lambda v: smooth.params(v, context), x)[0, :, :, 0, :].cpu()
    assert torch.all(jac[:, ~mask] == 0)
    assert torch.all((jac.abs().sum(0) > 0)[mask])


@pytest.mark.parametrize("cfg", CONFIGS[-2:])
def test_context_reaches_every_output_including_the_first(cfg, device):
    made = build({**cfg, "activation": "tanh"}, device)  # tanh: no locally inactive unit
    x = torch.randn(1, D, dtype=torch.float64, device=device)
    ctx = context_for(made, 1, device)
    jac = jacobian(lambda c: made.params(x, c), ctx)[0, :, :, 0, :]  # (P, D, ctx)
    assert torch.all(jac.abs().sum(dim=(0, 2)) > 0)


def test_hidden_degrees_cover_every_input_degree():
    made = MADE(6, hidden_features=7, blocks=2)
    for layer in list(made.layers)[:-1]:
        assert set(layer.out_degrees.tolist()) == set(range(1, 6))
    made_ctx = MADE(6, hidden_features=7, blocks=2, context_features=2)
    assert set(made_ctx.layers[0].out_degrees.tolist()) == set(range(0, 6))


@pytest.mark.parametrize("context", [None, 2])
def test_narrow_hidden_layer_is_legal_autoregressive_and_streams(context):
    """Fewer hidden units than degrees: later degrees have no units, the order still holds."""
    made = randomized(MADE(6, hidden_features=3, context_features=context, order="random",
                           seed=4, params_per_feature=2)).double()
    x = torch.randn(1, 6, dtype=torch.float64)
    ctx = None if context is None else torch.randn(1, context, dtype=torch.float64)
    jac = jacobian(lambda v: made.params(v, ctx), x)[0, :, :, 0, :]  # (P, D_out, D_in)
    degrees = made.input_degrees
    allowed = degrees[:, None] > degrees[None, :]
    assert torch.all(jac[:, ~allowed] == 0)
    assert jac.abs().sum() > 0
    state = made.start_stream(1, ctx)
    streamed = torch.zeros(1, 2, 6, dtype=torch.float64)
    for feature in state.order:
        streamed[:, :, feature] = state.params(feature)
        state.feed(feature, x[:, feature])
    torch.testing.assert_close(streamed, made.params(x, ctx), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls_name", ["MADE", "MAF", "IAF"])
@pytest.mark.parametrize("order", ["random", "reversed", [2, 0, 4, 1, 3]])
@pytest.mark.parametrize("context", [None, 2])
def test_stream_plan_follows_loaded_degrees(cls_name, order, context):
    """A random-order model saved and loaded into a fresh instance streams by the loaded order.

    Fresh instances draw another random order; the sequential direction must follow the
    buffers, not the constructor's draw.
    """
    import seqflow

    def build_one(seed):
        torch.manual_seed(seed)
        if cls_name == "MADE":
            return randomized(MADE(5, hidden_features=9, context_features=context, order=order,
                                   params_per_feature=2), seed).double()
        layer = getattr(seqflow, cls_name)(5, hidden_features=9, context_features=context,
                                           order=order)
        return randomized(layer, seed).double()

    trained, fresh = build_one(1), build_one(2)
    fresh.start_stream(3, None if context is None else torch.zeros(3, context,
                                                                    dtype=torch.float64)) \
        if cls_name == "MADE" else None  # builds and caches a plan from the fresh degrees
    fresh.load_state_dict(trained.state_dict())
    x = torch.randn(3, 5, dtype=torch.float64)
    ctx = None if context is None else torch.randn(3, context, dtype=torch.float64)
    with torch.no_grad():
        if cls_name == "MADE":
            torch.testing.assert_close(run_stream(fresh, x, ctx), fresh.params(x, ctx))
        else:
            torch.testing.assert_close(fresh.sequential(x, ctx)[0],
                                       trained.sequential(x, ctx)[0], rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(fresh.sequential(x, ctx)[0],
                                       fresh.naive_sequential(x, ctx)[0], rtol=1e-10,
                                       atol=1e-10)


def test_masked_linear_masks_the_weight():
    layer = MaskedLinear(torch.tensor([1, 2, 3]), torch.tensor([1, 2]), strict=False)
    assert layer.mask.tolist() == [[1, 0, 0], [1, 1, 0]]
    x = torch.randn(4, 3)
    ref = x @ (layer.weight * layer.mask).T + layer.bias
    torch.testing.assert_close(layer(x), ref)


def run_stream(made: MADE, x: torch.Tensor, context) -> torch.Tensor:
    """Drive a stream state with the true values of ``x``; collect ``(batch, P, D)``."""
    out = torch.full((x.shape[0], made.params_per_feature, D), float("nan"),
                     dtype=x.dtype, device=x.device)
    state = made.start_stream(x.shape[0], context)
    assert state.order == made.input_degrees.argsort().tolist()  # features by degree
    for feature in state.order:
        out[:, :, feature] = state.params(feature)
        state.feed(feature, x[:, feature])
    state.advance()
    return out


@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "recording"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_equals_full_pass(cfg, grad, device):
    made = build(cfg, device)
    x = torch.randn(6, D, dtype=torch.float64, device=device)
    context = context_for(made, 6, device)
    with torch.set_grad_enabled(grad):
        streamed = run_stream(made, x, context)
        streamed_again = run_stream(made, x, context)  # exercises the cached weights
    full = made.params(x, context)
    torch.testing.assert_close(streamed, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(streamed_again, full, rtol=1e-12, atol=1e-12)


def test_stream_is_differentiable():
    made = build(dict(order="random", seed=2, context_features=2), "cpu")
    x = torch.randn(3, D, dtype=torch.float64, requires_grad=True)
    context = context_for(made, 3, "cpu")
    streamed = run_stream(made, x, context)
    (g_stream,) = torch.autograd.grad(streamed.square().sum(), x)
    (g_full,) = torch.autograd.grad(made.params(x, context).square().sum(), x)
    torch.testing.assert_close(g_stream, g_full)


def test_stream_cache_follows_parameter_updates():
    made = build(dict(), "cpu")
    x = torch.randn(2, D, dtype=torch.float64)
    with torch.no_grad():
        run_stream(made, x, None)
        for p in made.parameters():
            p.add_(0.1)
        torch.testing.assert_close(run_stream(made, x, None), made.params(x))


def test_bad_shapes_are_named():
    made = MADE(4, hidden_features=8, context_features=2)
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        made.params(torch.randn(3, 5), torch.randn(3, 2))
    with pytest.raises(ValueError, match="context_features=2"):
        made.params(torch.randn(3, 4))


def test_default_width_is_max_64_2d_and_callers_leave_it_to_made():
    import seqflow

    assert MADE(3).hidden_features == 64 and MADE(40).hidden_features == 80
    assert seqflow.MAF(40).made.hidden_features == 80
    assert seqflow.MADEMoG(40, components=2).made.hidden_features == 80
    with pytest.raises(ValueError, match="hidden_features must be > 0"):
        MADE(4, hidden_features=0)
