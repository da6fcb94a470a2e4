"""Gradients through the sequential direction equal the gradients the one-pass direction implies.

The sequential direction ``S`` (MAF sampling, IAF density; streamed step by step, and under
autograd always by the eager step) inverts the one-pass direction ``P`` (MAF density, IAF
sampling): ``y = S(u)`` is the solution of ``P(y) = u``, and ``logdet_S(u) = -logdet_P(y)``.
For a loss ``L = <a, y> + <b, logdet_S>`` implicit differentiation gives every gradient from
``P`` alone (one pass and its Jacobian ``J = dP/dy``):

    lambda = J^-T dL~/dy,   dL/du = lambda,   dL/dtheta = dL~/dtheta - lambda^T dP/dtheta,

with ``L~(y, theta) = <a, y> - <b, logdet_P(y)>``. That is the first reference; the second is
autograd through ``naive_sequential`` (one full conditioner pass per element). Both are exact
in float64, so streaming must match them to round-off: parameters, inputs and local features.
"""

from __future__ import annotations

import pytest
import torch
from sequence_helpers import perturb, single_thread  # noqa: F401  (autouse fixture)

from seqflow import IAF, MAF, Compose, SequenceIAF, SequenceMAF, SequenceStack
from seqflow.nn import SequenceContext

TOL = dict(rtol=1e-11, atol=1e-12)  # float64: the round-off measured here is below 1e-14


def sequence_flow(kind: str, conditioner: str, channels: int, layers: int, cond: str | None):
    """A perturbed float64 SequenceMAF/IAF stack. ``cond``: None, ``"layer"`` (each layer
    upsamples its local features, 2 channels x 4, and embeds 3 global ids) or ``"stack"`` (the
    stack owns one upsampler; the layers read features at the sample rate)."""
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    size = (dict(residual_channels=4, skip_channels=4, blocks=3) if conditioner == "wavenet"
            else dict(hidden_features=5, head_features=5))
    per_layer = {"layer": dict(cond_channels=2, upsample_factor=4, num_global_ids=3),
                 "stack": dict(cond_channels=2, num_global_ids=3), None: {}}[cond]
    orders = ["natural", [2, 0, 1], "reversed"] if channels == 3 else ["natural"] * 3
    made = [cls(channels, conditioner=conditioner, order=orders[i % 3], **size, **per_layer)
            for i in range(layers)]
    stack = SequenceStack(made, **(dict(cond_channels=2, upsample_factor=4)
                                   if cond == "stack" else {}))
    return perturb(stack.double(), 0.3, seed=layers + channels).eval()


def vector_flow(kind: str):
    """Two perturbed float64 MADE layers on 5 features with a 2-feature context."""
    cls = MAF if kind == "maf" else IAF
    layers = [cls(5, hidden_features=12, blocks=2, context_features=2, order=order)
              for order in ("natural", "reversed")]
    return perturb(Compose(layers).double(), 0.3, seed=7).eval()


def directions(flow, kind: str):
    """``(sequential, one_pass)``: MAF sampling and density, or IAF density and sampling."""
    if kind == "maf":
        return flow.inverse, flow.forward
    return flow.forward, flow.inverse


def naive_sequential(flow, kind: str, u, context):
    """``S(u)`` by every layer's ``naive_sequential``, layer after layer in ``S``'s order."""
    layers = list(flow.layers if isinstance(flow, SequenceStack) else flow.transforms)
    if isinstance(flow, SequenceStack):
        context = flow._sample_rate_context(context)  # the stack's upsampler, as S applies it
    total = 0
    for layer in reversed(layers) if kind == "maf" else layers:
        u, logdet = layer.naive_sequential(u, context)
        total = total + logdet
    return u, total


def gradients(run, u, a, b, leaves):
    """``(dL/du, [dL/dleaf])`` by autograd through ``run(u) -> (y, logdet)``."""
    u = u.detach().requires_grad_(True)
    y, logdet = run(u)
    loss = (a * y).sum() + (b * logdet).sum()
    du, *rest = torch.autograd.grad(loss, [u, *leaves], allow_unused=True)
    return du, [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, rest, strict=True)]


def implicit_gradients(one_pass, y, a, b, leaves):
    """The same gradients from the one-pass direction alone (see the module docstring).

    ``one_pass``: ``y -> (u, logdet_P)``; ``y``: the result of the sequential direction (its
    value only); ``a`` like ``y``; ``b`` ``(batch,)``. Solves ``J^T lambda = dL~/dy`` with the
    dense Jacobian ``J`` ``(n, n)``, ``n = y.numel()`` (block-triangular in the order).
    """
    y = y.detach().requires_grad_(True)
    u, logdet = one_pass(y)
    surrogate = (a * y).sum() - (b * logdet).sum()
    dy, *direct = torch.autograd.grad(surrogate, [y, *leaves], retain_graph=True,
                                      allow_unused=True)
    rows = torch.eye(y.numel(), dtype=y.dtype).view(-1, *y.shape)
    jac = torch.autograd.grad(u, y, rows, retain_graph=True, is_grads_batched=True)[0]
    lam = torch.linalg.solve(jac.reshape(y.numel(), -1).T, dy.flatten()).view_as(y)
    back = torch.autograd.grad(u, leaves, lam, allow_unused=True)
    grads = [(0 if d is None else d) - (0 if g is None else g) + torch.zeros_like(p)
             for p, d, g in zip(leaves, direct, back, strict=True)]
    return lam, grads


def check(flow, kind: str, u, context, local=None):
    """Streaming gradients against both references; ``local``: the local features tensor
    inside ``context`` (a leaf), or None."""
    generator = torch.Generator().manual_seed(5)
    a = torch.randn(u.shape, generator=generator, dtype=u.dtype)
    b = torch.randn(u.shape[0], generator=generator, dtype=u.dtype)
    leaves = [*flow.parameters(), *([] if local is None else [local])]
    names = [n for n, _ in flow.named_parameters()] + ([] if local is None else ["local"])
    sequential, one_pass = directions(flow, kind)
    du, grads = gradients(lambda v: sequential(v, context), u, a, b, leaves)
    with torch.no_grad():
        y, _ = sequential(u, context)
    references = {
        "one-pass (implicit)": implicit_gradients(lambda v: one_pass(v, context), y, a, b,
                                                  leaves),
        "naive_sequential": gradients(lambda v: naive_sequential(flow, kind, v, context), u, a,
                                      b, leaves),
    }
    assert any(g.abs().max() > 1e-3 for g in grads)  # a real signal, not zeros matching zeros
    for reference, (du_ref, grads_ref) in references.items():
        torch.testing.assert_close(du, du_ref, **TOL, msg=lambda m, r=reference:
                                   f"d loss / d input vs {r}: {m}")
        for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
            torch.testing.assert_close(g, g_ref, **TOL, msg=lambda m, n=name, r=reference:
                                       f"d loss / d {n} vs {r}: {m}")


@pytest.mark.parametrize("kind,conditioner,channels,layers,cond", [
    ("maf", "wavenet", 1, 1, "layer"),  # one channel: the single-channel step
    ("iaf", "wavenet", 1, 2, None),
    ("maf", "wavenet", 3, 2, "stack"),  # three channels, the stack's upsampler
    ("iaf", "wavenet", 3, 1, "layer"),
    ("maf", "lstm", 3, 1, "layer"),
    ("iaf", "lstm", 1, 2, "stack"),
])
def test_sequence_stream_gradients_equal_one_pass_gradients(kind, conditioner, channels, layers,
                                                            cond):
    flow = sequence_flow(kind, conditioner, channels, layers, cond)
    length, batch = 12, 2
    generator = torch.Generator().manual_seed(11)
    u = torch.randn(batch, channels, length, generator=generator, dtype=torch.float64)
    local = None
    context = None
    if cond is not None:
        local = torch.randn(batch, 2, length // 4, generator=generator, dtype=torch.float64)
        local.requires_grad_(True)
        context = SequenceContext(local, torch.tensor([2, 0]))
    check(flow, kind, u, context, local)


@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_vector_stream_gradients_equal_one_pass_gradients(kind):
    """The degree-sliced MADE stream, recording gradients, with a context."""
    flow = vector_flow(kind)
    generator = torch.Generator().manual_seed(3)
    u = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    context = torch.randn(4, 2, generator=generator, dtype=torch.float64).requires_grad_(True)
    check(flow, kind, u, context, local=context)


def test_the_references_see_a_gradient_only_error():
    """A stream whose values are right but whose gradients are off by one part in 10^9 fails:
    the comparison is tighter than the errors it must catch."""
    flow = sequence_flow("iaf", "wavenet", 1, 1, None)
    u = torch.randn(2, 1, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sequential, one_pass = directions(flow, "iaf")
    generator = torch.Generator().manual_seed(5)
    a = torch.randn(u.shape, generator=generator, dtype=u.dtype)
    b = torch.randn(2, generator=generator, dtype=u.dtype)
    leaves = list(flow.parameters())

    def skewed(v):
        y, logdet = sequential(v, None)
        return y + 1e-9 * (y - y.detach()), logdet  # same value, gradient scaled by 1 + 1e-9

    _, grads = gradients(skewed, u, a, b, leaves)
    with torch.no_grad():
        y, _ = sequential(u, None)
    _, reference = implicit_gradients(lambda v: one_pass(v, None), y, a, b, leaves)
    with pytest.raises(AssertionError):
        for g, g_ref in zip(grads, reference, strict=True):
            torch.testing.assert_close(g, g_ref, **TOL)
