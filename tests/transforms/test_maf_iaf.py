"""MAF and IAF on vectors: exact triangular Jacobians, inversion, log-det, streaming == naive."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from seqflow.distributions import Flow, MADEMoG, StandardNormal
from seqflow.transforms import Compose
from seqflow.transforms.maf import IAF, MAF

D = 5


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws its inputs from a fixed seed, independent of test order."""
    torch.manual_seed(0)
CLASSES = [pytest.param(MAF, id="MAF"), pytest.param(IAF, id="IAF")]
SETTINGS = [
    pytest.param(dict(order="random", seed=4), id="random"),
    pytest.param(dict(order="random", seed=9, context_features=3), id="random-context"),
    pytest.param(dict(order=[1, 4, 0, 3, 2], residual=True), id="explicit-residual"),
]


def randomized(module: torch.nn.Module, seed: int = 0, scale: float = 0.5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


def make_layer(cls, settings: dict, device, features: int = D):
    layer = cls(features, hidden_features=12, blocks=2, **settings)
    return randomized(layer.double().to(device))


def make_context(layer, batch: int, device):
    if layer.context_features is None:
        return None
    return torch.randn(batch, layer.context_features, dtype=torch.float64, device=device)


def order_permutation(layer) -> torch.Tensor:
    """Features sorted by degree: ``perm[k]`` comes k-th."""
    return layer.made.input_degrees.argsort().cpu()


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "naive"])
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("cls", CLASSES)
def test_layer_jacobian_is_exactly_triangular_in_its_order(cls, settings, direction, streaming,
                                                            device):
    layer = make_layer(cls, settings, device)
    x = torch.randn(1, D, dtype=torch.float64, device=device)
    context = make_context(layer, 1, device)
    fn = directed(layer, direction, naive=not streaming)
    jac = jacobian(lambda v: fn(v, context)[0], x)[0, :, 0, :].cpu()  # (D_out, D_in)
    perm = order_permutation(layer)
    ordered = jac[perm][:, perm]
    assert torch.all(torch.triu(ordered, diagonal=1) == 0)
    assert torch.all(torch.diagonal(ordered) != 0)
    # The dependence is real: the strictly lower part is not all zero.
    assert torch.tril(ordered, diagonal=-1).abs().sum() > 0


@pytest.mark.parametrize("cls", CLASSES)
def test_stack_with_a_shared_order_is_triangular_after_that_permutation(cls, device):
    order = [3, 1, 4, 0, 2]
    stack = Compose([make_layer(cls, dict(order=order, context_features=2), device)
                     for _ in range(3)])
    randomized(stack, seed=5)
    x = torch.randn(1, D, dtype=torch.float64, device=device)
    context = torch.randn(1, 2, dtype=torch.float64, device=device)
    jac = jacobian(lambda v: stack(v, context)[0], x)[0, :, 0, :].cpu()
    ordered = jac[order][:, order]
    assert torch.all(torch.triu(ordered, diagonal=1) == 0)
    assert torch.tril(ordered, diagonal=-1).abs().sum() > 0


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "naive"])
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("cls", CLASSES)
def test_inverse_and_logdet_match_autograd(cls, settings, streaming, device):
    layer = make_layer(cls, settings, device)
    forward = directed(layer, "forward", naive=not streaming)
    inverse = directed(layer, "inverse", naive=not streaming)
    x = torch.randn(4, D, dtype=torch.float64, device=device)
    context = make_context(layer, 4, device)
    z, logdet = forward(x, context)
    x_back, logdet_inv = inverse(z, context)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logdet_inv, -logdet, rtol=1e-10, atol=1e-10)
    for i in range(4):
        ctx = None if context is None else context[i : i + 1]
        jac = jacobian(lambda v: forward(v, ctx)[0], x[i : i + 1])[0, :, 0, :]  # noqa: B023
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac)[1], rtol=1e-10,
                                   atol=1e-10)
        jac_inv = jacobian(lambda v: inverse(v, ctx)[0], z[i : i + 1])[0, :, 0, :]  # noqa: B023
        torch.testing.assert_close(logdet_inv[i], torch.linalg.slogdet(jac_inv)[1], rtol=1e-10,
                                   atol=1e-10)


@pytest.mark.parametrize("cls", CLASSES)
def test_streaming_equals_naive_path_at_d64_in_float32(cls):
    torch.manual_seed(0)
    layer = randomized(cls(64, context_features=4), scale=0.05)
    y = torch.randn(256, 64)
    context = torch.randn(256, 4)
    with torch.no_grad():
        fast, logdet_fast = layer.sequential(y, context)
        naive, logdet_naive = layer.naive_sequential(y, context)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logdet_fast, logdet_naive, rtol=1e-5, atol=1e-4)


def directed(layer, direction: str, naive: bool):
    """``layer`` or ``layer.inverse``; the sequential one by brute force when ``naive``."""
    sequential = "inverse" if layer.conditioner_side == "data" else "forward"
    if naive and direction == sequential:
        return layer.naive_sequential
    return layer if direction == "forward" else layer.inverse


def count_passes(flow: Flow) -> dict[str, int]:
    """Wrap every MADE's full pass and stream so calls are counted."""
    counts = {"params": 0, "stream": 0}
    for module in flow.modules():
        if hasattr(module, "start_stream"):
            full, stream = module.params, module.start_stream

            def counted_full(*a, _f=full, **k):
                counts["params"] += 1
                return _f(*a, **k)

            def counted_stream(*a, _s=stream, **k):
                counts["stream"] += 1
                return _s(*a, **k)

            module.params, module.start_stream = counted_full, counted_stream
    return counts


def test_iaf_sample_and_log_prob_is_one_pass_and_equals_sequential_log_prob():
    torch.manual_seed(1)
    layers = [randomized(IAF(D, order=o), seed=i, scale=0.3)
              for i, o in enumerate(["natural", "reversed", "random"])]
    flow = Flow(Compose(layers), StandardNormal(D)).double()
    counts = count_passes(flow)
    x, log_q = flow.sample_and_log_prob(64)
    assert counts == {"params": 3, "stream": 0}  # one MADE pass per layer, no sequential step
    log_p = flow.log_prob(x)  # IAF.forward: the sequential, streamed direction
    assert counts["stream"] == 3
    torch.testing.assert_close(log_q, log_p, rtol=1e-10, atol=1e-10)


def test_maf_log_prob_is_one_pass_and_sampling_streams():
    flow = Flow(Compose([randomized(MAF(D), scale=0.3)]), StandardNormal(D))
    counts = count_passes(flow)
    flow.log_prob(torch.randn(8, D))
    assert counts == {"params": 1, "stream": 0}
    with torch.no_grad():
        flow.sample(8)
    assert counts == {"params": 1, "stream": 1}


def test_layers_build_from_the_feature_count_alone_and_start_as_identity():
    x = torch.randn(3, 7)
    for cls in (MAF, IAF):
        z, logdet = cls(7)(x)
        torch.testing.assert_close(z, x)
        torch.testing.assert_close(logdet, torch.zeros(3))


def test_log_scale_is_softly_bounded():
    layer = MAF(3, log_scale_bound=2.0)
    with torch.no_grad():
        layer.made.layers[-1].bias.fill_(1e4)  # huge raw log-scales
    z, logdet = layer(torch.randn(2, 3))
    assert torch.isfinite(z).all()
    assert torch.all(logdet.abs() <= 3 * 2.0)


def test_bad_input_shapes_are_named():
    with pytest.raises(ValueError, match="expected 4 features"):
        MAF(4)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="context"):
        IAF(4, context_features=2).inverse(torch.randn(2, 4))


def test_made_mog_is_a_normalized_autoregressive_density():
    torch.manual_seed(0)
    mog = randomized(MADEMoG(2, components=3, hidden_features=8), scale=0.4).double()
    edges = torch.linspace(-12, 12, 601, dtype=torch.float64)
    centers = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = torch.meshgrid(centers, centers, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        mass = mog.log_prob(grid).exp().sum() * (edges[1] - edges[0]) ** 2
        samples = mog.sample(40000)
        density = mog.log_prob(grid).exp().reshape(600, 600) * (edges[1] - edges[0]) ** 2
    assert abs(float(mass) - 1) < 1e-3
    # Sample means match the density's means (streamed sampling is consistent with log_prob).
    mean_density = torch.stack([(density.sum(1) * centers).sum(), (density.sum(0) * centers).sum()])
    torch.testing.assert_close(samples.mean(0), mean_density, atol=0.05, rtol=0)


def test_maf_with_made_mog_base_and_context_is_a_normalized_density():
    """A context-conditioned MAF over a context-conditioned MADEMoG (float64): for a fixed
    context the density integrates to one on a grid; streamed sampling and the one-pass
    density invert each other and give the same log-density to the samples."""
    base = randomized(MADEMoG(2, components=2, hidden_features=6, context_features=2),
                      seed=1, scale=0.3).double()
    maf = randomized(MAF(2, hidden_features=8, context_features=2), seed=2, scale=0.3).double()
    flow = Flow(Compose([maf]), base)
    context = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    edges = torch.linspace(-15, 15, 601, dtype=torch.float64)
    centers = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = torch.meshgrid(centers, centers, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        density = flow.log_prob(grid, context.expand(len(grid), -1)).exp()
    assert abs(float(density.sum() * (edges[1] - edges[0]) ** 2) - 1) < 1e-6
    tight = dict(rtol=1e-10, atol=1e-10)
    contexts = torch.randn(5, 2, dtype=torch.float64)
    noise = torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():  # the stream's whole-vector program
        x, logdet = flow.transform.inverse(noise, contexts)
        z, logdet_back = flow.transform(x, contexts)  # one pass
    torch.testing.assert_close(z, noise, **tight)
    torch.testing.assert_close(logdet, -logdet_back, **tight)
    x, log_p = flow.sample_and_log_prob(5, contexts)  # recording: the step-by-step stream
    torch.testing.assert_close(flow.log_prob(x, contexts), log_p, **tight)


WHOLE_VECTOR = [
    *SETTINGS,
    pytest.param(dict(order="reversed", activation="tanh", context_features=2), id="tanh-context"),
    pytest.param(dict(order="natural", activation="elu", residual=True), id="elu-residual"),
    pytest.param(dict(order="random", seed=2, activation="gelu"), id="gelu"),
    pytest.param(dict(order="natural", hidden_features=3), id="narrow-hidden"),
]


@pytest.mark.parametrize("settings", WHOLE_VECTOR)
@pytest.mark.parametrize("cls", CLASSES)
def test_whole_vector_program_equals_naive_and_recorded_paths(cls, settings, device):
    """Without gradients the sequential direction runs the MADE's whole-vector program; it
    equals the naive D-pass path and the step-by-step path taken under autograd."""
    settings = {"hidden_features": 12, **settings}
    layer = randomized(cls(D, blocks=2, **settings).double().to(device))
    sequential = layer.inverse if cls is MAF else layer.forward
    y = torch.randn(6, D, dtype=torch.float64, device=device)
    context = make_context(layer, 6, device)
    with torch.no_grad():
        out, logdet = sequential(y, context)
        naive, logdet_naive = layer.naive_sequential(y, context)
    recorded, logdet_recorded = sequential(y, context)
    assert recorded.requires_grad  # the step-by-step path ran
    for other, other_logdet in ((naive, logdet_naive), (recorded.detach(), logdet_recorded)):
        torch.testing.assert_close(out, other, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(logdet, other_logdet.detach(), rtol=1e-10, atol=1e-10)
