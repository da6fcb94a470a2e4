"""SequenceMAF / SequenceIAF / SequenceStack: invertibility, log-det vs autograd, Flow API."""

from __future__ import annotations

import pytest
import torch
from sequence_helpers import (  # noqa: F401  (single_thread is an autouse fixture)
    conditioning_kwargs,
    jacobian_logabsdet,
    make_context,
    perturb,
    single_thread,
)

from seqflow import Flow, SequenceIAF, SequenceMAF, SequenceStack, StandardNormal
from seqflow.nn import SequenceContext

TINY = dict(residual_channels=4, skip_channels=4, blocks=2)


def tiny(cls, channels=1, conditioner="wavenet", cond=False, seed=0, scale=0.3):
    size = TINY if conditioner == "wavenet" else dict(hidden_features=4, head_features=4)
    layer = cls(channels, conditioner=conditioner, **size, **conditioning_kwargs(cond))
    return perturb(layer, scale, seed).eval()


@pytest.mark.parametrize("cls", [SequenceMAF, SequenceIAF])
def test_invertible_over_16000_samples(cls, device):
    """One pass in one direction, streaming in the other, over a second of 16 kHz audio."""
    torch.manual_seed(0)  # initial weights and inputs must not depend on earlier tests
    layer = tiny(cls, cond=True, scale=0.1).to(device)
    length = 16000
    context = make_context(True, 1, length, device)
    generator = torch.Generator().manual_seed(0)  # fixed data: the identity check is one-sided
    y = torch.randn(1, 1, length, generator=generator).to(device)
    with torch.no_grad():
        out, logdet = layer(y, context)
        back, logdet_back = layer.inverse(out, context)
    assert (out - y).abs().mean() > 0.02  # not the identity
    torch.testing.assert_close(back, y, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logdet_back, -logdet, rtol=1e-4, atol=1e-2)


def _flows(cond):
    yield "maf", tiny(SequenceMAF, 2, cond=cond)
    yield "iaf", tiny(SequenceIAF, 2, cond=cond, seed=1)
    yield "maf-lstm", tiny(SequenceMAF, 2, "lstm", cond=cond, seed=2)
    yield "maf-stack", SequenceStack(
        [tiny(SequenceMAF, 2, cond=cond, seed=s) for s in (3, 4)]
    )
    yield "iaf-stack", SequenceStack(
        [tiny(SequenceIAF, 2, cond=cond, seed=s) for s in (5, 6)]
    )


@pytest.mark.parametrize("cond", [False, True])
def test_log_det_matches_autograd_jacobian_float64(cond):
    length = 4
    context = make_context(cond, 1, length, dtype=torch.float64)
    for name, flow in _flows(cond):
        flow = flow.double()
        x = torch.randn(1, 2, length, dtype=torch.float64)
        z, logdet = flow(x, context)
        expected = jacobian_logabsdet(lambda v, f=flow: f(v, context)[0], x)
        torch.testing.assert_close(logdet[0], expected, msg=f"{name} forward")
        back, logdet_inv = flow.inverse(z, context)
        expected_inv = jacobian_logabsdet(lambda v, f=flow: f.inverse(v, context)[0], z)
        torch.testing.assert_close(logdet_inv[0], expected_inv, msg=f"{name} inverse")
        torch.testing.assert_close(back, x, msg=f"{name} round trip")


def test_flow_length_explicit_or_from_context():
    maf = tiny(SequenceMAF, 1, cond=True)
    flow = Flow(maf, StandardNormal(1))
    context = make_context(True, 3, 32)
    x, log_prob = flow.sample_and_log_prob(3, context)  # 8 frames x 4 samples per frame
    assert x.shape == (3, 1, 32)
    torch.testing.assert_close(flow.log_prob(x, context), log_prob, rtol=1e-4, atol=1e-3)
    plain = Flow(tiny(SequenceIAF, 2), StandardNormal(2)).double()
    x_plain, log_prob_plain = plain.sample_and_log_prob(2, length=7)  # one pass; log_prob streams
    assert x_plain.shape == (2, 2, 7)
    torch.testing.assert_close(plain.log_prob(x_plain), log_prob_plain, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="needs length="):
        plain.sample(2)


def test_iaf_sample_and_log_prob_is_one_pass_and_consistent():
    flow = Flow(tiny(SequenceIAF, 2, cond=True), StandardNormal(2))
    context = make_context(True, 2, 16)
    x, log_prob = flow.sample_and_log_prob(2, context)
    # log_prob of given data goes through the sequential (streaming) direction.
    torch.testing.assert_close(flow.log_prob(x, context), log_prob, rtol=1e-4, atol=1e-3)


def test_global_only_context_and_lstm():
    """An LSTM SequenceMAF conditioned on global ids only (float64): the streamed inverse undoes
    the one pass, the log-det is the autograd Jacobian's, and an id changes only its own row."""
    layer = SequenceMAF(2, conditioner="lstm", hidden_features=4, head_features=4, num_global_ids=5)
    layer = perturb(layer, 0.3, seed=3).double().eval()
    ids = torch.tensor([0, 4, 2])
    x = torch.randn(3, 2, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z, logdet = layer(x, ids)
    assert z.shape == (3, 2, 9)
    back, logdet_back = layer.inverse(z, ids)
    torch.testing.assert_close(back, x)
    torch.testing.assert_close(logdet_back, -logdet)
    expected = jacobian_logabsdet(lambda v: layer(v, ids[1:2])[0], x[1:2])
    torch.testing.assert_close(logdet[1], expected)
    z_other, _ = layer(x, torch.tensor([0, 3, 2]))
    torch.testing.assert_close(z_other[[0, 2]], z[[0, 2]])
    assert (z_other[1] - z[1]).abs().max() > 1e-3  # the id enters the map


def test_errors_name_shapes():
    layer = SequenceMAF(2, **TINY)
    with pytest.raises(ValueError, match=r"expected \(batch, 2, time\), got \(3, 2\)"):
        layer(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="built without|cond_channels=None"):
        layer(torch.zeros(3, 2, 8), torch.zeros(3, 4, 2))
    with pytest.raises(ValueError, match="conditioner must be"):
        SequenceMAF(1, conditioner="transformer")
    with pytest.raises(ValueError, match="single kind"):
        SequenceStack([SequenceMAF(1, **TINY), SequenceIAF(1, **TINY)])
    with pytest.raises(ValueError, match="history must be"):
        layer.sequential(torch.zeros(3, 2, 8), history=torch.zeros(2, 2, 8))
    with pytest.raises(ValueError, match="disagree on the batch"):
        SequenceContext(torch.zeros(2, 1, 3), torch.tensor([0]))


def test_a_mel_stack_of_unconditioned_layers_is_refused_naming_the_layer():
    """The stack's own refusal, not an AttributeError from the layer's missing upsampler."""
    layers = [SequenceMAF(1, **TINY), SequenceMAF(1, **TINY)]
    with pytest.raises(ValueError, match=r"layer 0 .*cond_channels=4 .*got cond_channels=None"):
        SequenceStack(layers, cond_channels=4, upsample_factor=8)
