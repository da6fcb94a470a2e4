"""WaveNet / CausalLSTM conditioners: causality by exact-zero gradients, receptive field, shapes."""

from __future__ import annotations

import pytest
import torch
from sequence_helpers import (  # noqa: F401  (single_thread is an autouse fixture)
    conditioning_kwargs,
    make_context,
    perturb,
    single_thread,
)

from seqflow.nn import CausalConv1d, CausalLSTM, ConditionUpsampler, MaskedCausalConv1d, WaveNet
from seqflow.nn.context import SequenceContext


def params_jacobian(net, y, context):
    """``d(shift, raw)[c, t] / d y[c', t']`` as ``(2, C, T, C, T)`` for a single sample."""

    def fn(v):
        shift, raw = net(v.view_as(y), context)
        return torch.stack([shift[0], raw[0]])

    return torch.autograd.functional.jacobian(fn, y, vectorize=True)[..., 0, :, :]


def allowed_mask(degrees: torch.Tensor, length: int) -> torch.Tensor:
    """``(C, T, C, T)``: may ``(c, t)`` depend on ``(c', t')`` in time-then-channel order."""
    t = torch.arange(length)
    earlier_time = t[None, :, None, None] > t[None, None, None, :]
    same_time = t[None, :, None, None] == t[None, None, None, :]
    earlier_channel = degrees[:, None, None, None] > degrees[None, None, :, None]
    return earlier_time | (same_time & earlier_channel)


CONDITIONERS = {
    "wavenet": lambda c, **kw: WaveNet(c, residual_channels=12, skip_channels=12, blocks=3, **kw),
    "wavenet-k3-cycles": lambda c, **kw: WaveNet(
        c, residual_channels=12, skip_channels=12, kernel_size=3, blocks=4, cycles=2, **kw
    ),
    "lstm": lambda c, **kw: CausalLSTM(c, hidden_features=12, head_features=12, **kw),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cond", [False, True])
@pytest.mark.parametrize("kind", sorted(CONDITIONERS))
def test_autoregressive_by_gradients(kind, channels, cond, device):
    torch.manual_seed(0)
    order = [2, 0, 1] if channels == 3 else "natural"
    net = CONDITIONERS[kind](channels, order=order, **conditioning_kwargs(cond))
    net = perturb(net).double().to(device)
    length = 24
    y = torch.randn(1, channels, length, dtype=torch.float64, device=device)
    context = make_context(cond, 1, length, device, torch.float64)
    jac = params_jacobian(net, y, context).abs()
    allowed = allowed_mask(net.degrees.cpu(), length).to(device)
    assert torch.all(jac[:, ~allowed] == 0), "an output depends on an element the order forbids"
    # Not vacuous: every output channel depends on earlier steps and, for C=3, the last
    # channel in the order on the first at the same step (somewhere: tiny random nets have
    # positions where every ReLU on a path is off).
    t = torch.arange(1, length)
    assert torch.all(jac[:, :, t, :, t - 1].sum(dim=(0, -1)).amax(dim=0) > 0)
    if channels == 3:
        last, first = int(net.degrees.argmax()), int(net.degrees.argmin())
        assert torch.any(jac[:, last, t, first, t] > 0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["wavenet", "wavenet-k3-cycles"])
def test_measured_receptive_field(kind, channels):
    torch.manual_seed(1)
    net = perturb(CONDITIONERS[kind](channels, **conditioning_kwargs(True))).double()
    length = 4 * ((net.receptive_field + 13) // 4)  # a whole number of frames
    y = torch.randn(1, channels, length, dtype=torch.float64)
    context = make_context(True, 1, length, dtype=torch.float64)
    y.requires_grad_(True)
    shift, raw = net(y, context)
    last = length - 1
    # Gradient of every parameter at the last step w.r.t. each input time step.
    influence = torch.zeros(length, dtype=torch.float64)
    for out in [*shift[0, :, last], *raw[0, :, last]]:
        (grad,) = torch.autograd.grad(out, y, retain_graph=True)
        influence += grad[0].abs().sum(dim=0)
    earliest = int(influence.nonzero().min())
    assert last - earliest + 1 == net.receptive_field


def test_single_channel_is_wavenet_on_shifted_input():
    torch.manual_seed(2)
    net = perturb(WaveNet(1, residual_channels=4, skip_channels=4, blocks=2))
    assert net.input_conv.current_tap_is_zero
    y = torch.randn(2, 1, 30)
    shift, _ = net(y)
    changed = y.clone()
    changed[:, :, 10] += 1.0
    shift2, _ = net(changed)
    assert torch.equal(shift[..., :11], shift2[..., :11])
    assert not torch.allclose(shift[..., 11], shift2[..., 11])


def test_fresh_conditioner_outputs_zero():
    y = torch.randn(2, 3, 16)
    for net in (WaveNet(3, 8, 8, blocks=2), CausalLSTM(3, 8, head_features=8)):
        shift, raw = net(y)
        assert torch.count_nonzero(shift) == 0 and torch.count_nonzero(raw) == 0


def test_causal_conv_is_causal_and_masked_current_tap():
    torch.manual_seed(3)
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=2)
    x = torch.randn(1, 2, 20)
    x2 = x.clone()
    x2[..., 12:] = 0.0
    assert torch.allclose(conv(x)[..., :12], conv(x2)[..., :12])
    assert conv.lookback == 4
    masked = MaskedCausalConv1d(torch.tensor([1, 2]), torch.tensor([1, 1, 2]), 2)
    assert masked.effective_weight()[:, :, -1].eq(0).tolist() == [
        [False, True], [False, True], [False, False]
    ]
    assert torch.equal(masked.effective_weight()[:, :, 0], masked.weight[:, :, 0])


def test_upsampler_lengths_and_identity():
    assert ConditionUpsampler(3, 1)(torch.ones(1, 3, 7)).shape == (1, 3, 7)
    assert ConditionUpsampler(3, 5)(torch.ones(2, 3, 7)).shape == (2, 3, 35)


def test_context_errors_name_the_problem():
    net = WaveNet(1, 4, 4, blocks=2, cond_channels=2, upsample_factor=4, num_global_ids=3)
    y = torch.zeros(2, 1, 16)
    with pytest.raises(ValueError, match="local features were not given"):
        net(y, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="upsample to 12 samples, but the sequence has 16"):
        net(y, SequenceContext(torch.zeros(2, 2, 3), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="global ids were not given"):
        net(y, torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match=r"expected \(batch, 1, time\)"):
        net(torch.zeros(2, 3, 16))
    with pytest.raises(ValueError, match="multiple of cycles"):
        WaveNet(1, blocks=5, cycles=2)
