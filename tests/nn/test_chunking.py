"""Chunked one-pass inference equals the whole-sequence pass; it runs only without gradients."""

from __future__ import annotations

import pytest
import torch
from sequence_helpers import (  # noqa: F401  (single_thread is an autouse fixture)
    conditioning_kwargs,
    make_context,
    perturb,
    single_thread,
)

from seqflow import SequenceIAF, SequenceMAF, SequenceStack
from seqflow.nn import CausalLSTM, WaveNet
from seqflow.nn.chunking import MIN_CHUNK_STEPS, chunk_steps, chunk_values

NETS = {
    "wavenet": lambda c, **kw: WaveNet(c, residual_channels=8, skip_channels=8, blocks=4, **kw),
    "wavenet-k3-cycles": lambda c, **kw: WaveNet(
        c, residual_channels=8, skip_channels=8, kernel_size=3, blocks=6, cycles=2, **kw
    ),
    "lstm": lambda c, **kw: CausalLSTM(c, hidden_features=8, head_features=8, blocks=2, **kw),
}


def count_chunks(net, monkeypatch) -> list[int]:
    """Record the length of every chunk the conditioner is asked for."""
    calls: list[int] = []
    original = type(net).chunk_features

    def spy(self, y, *args):
        calls.append(y.shape[-1])
        return original(self, y, *args)

    monkeypatch.setattr(type(net), "chunk_features", spy)
    return calls


@pytest.mark.parametrize("kind", sorted(NETS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cond", [False, True])
def test_chunked_pass_equals_whole_pass(kind, channels, cond, monkeypatch):
    net = perturb(NETS[kind](channels, **conditioning_kwargs(cond)), 0.3).eval()
    batch, length = 2, 4 * (3 * MIN_CHUNK_STEPS // 4 + 11)  # not a multiple of the chunk
    y = torch.randn(batch, channels, length)
    context = make_context(cond, batch, length)
    with torch.no_grad(), chunk_values(0):
        whole = net(y, context)
    calls = count_chunks(net, monkeypatch)
    with torch.no_grad(), chunk_values(batch * MIN_CHUNK_STEPS):
        chunked = net(y, context)
    assert calls == [MIN_CHUNK_STEPS] * 3 + [length - 3 * MIN_CHUNK_STEPS]
    for a, b in zip(chunked, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(NETS))
def test_chunks_shorter_than_every_lookback(kind):
    """The carry works for any chunk length, even 1 step or chunks shorter than a dilation."""
    net = perturb(NETS[kind](2, **conditioning_kwargs(True)), 0.3).eval()
    y = torch.randn(1, 2, 40)
    cond, ids = net.conditioning(make_context(True, 1, 40), 1, 40)
    with torch.no_grad():
        whole = net.features(y, cond, ids)
        pieces, carry, start = [], None, 0
        for n in [1, 2, 3, 1, 7, 26]:
            part, carry = net.chunk_features(y[..., start:start + n], cond[..., start:start + n],
                                             ids, carry)
            pieces.append(part)
            start += n
    torch.testing.assert_close(torch.cat(pieces, dim=-1), whole, rtol=1e-5, atol=1e-5)


def test_no_chunks_while_recording_gradients(monkeypatch):
    net = perturb(NETS["wavenet"](1), 0.3)
    calls = count_chunks(net, monkeypatch)
    y = torch.randn(1, 1, 4 * MIN_CHUNK_STEPS)
    with chunk_values(MIN_CHUNK_STEPS):
        shift, _ = net(y)
        assert calls == [] and shift.requires_grad
        assert chunk_steps(1, 10**6, None) is None
        with torch.no_grad():
            net(y)
            assert chunk_steps(1, 10**6, None) == MIN_CHUNK_STEPS
    assert calls == [MIN_CHUNK_STEPS] * 4


def test_chunks_are_never_shorter_than_the_receptive_field():
    with torch.no_grad(), chunk_values(1):
        assert chunk_steps(16, 10**5, 1025) == 1025
        assert chunk_steps(16, 1025, 1025) is None  # one piece


@pytest.mark.parametrize("cls", [SequenceMAF, SequenceIAF])
def test_flow_one_pass_directions_chunk_transparently(cls):
    """MAF density and IAF sampling of a stack with one upsampler, chunked vs whole."""
    layers = [perturb(cls(1, residual_channels=8, skip_channels=8, blocks=3, cond_channels=2), 0.3,
                      seed=i) for i in range(2)]
    stack = SequenceStack(layers, cond_channels=2, upsample_factor=4).eval()
    length = 4 * 300
    y = torch.randn(2, 1, length)
    local = torch.randn(2, 2, length // 4)
    one_pass = stack if cls is SequenceMAF else stack.inverse
    with torch.no_grad():
        with chunk_values(0):
            out, logdet = one_pass(y, local)
        with chunk_values(2 * MIN_CHUNK_STEPS):
            out_chunked, logdet_chunked = one_pass(y, local)
    torch.testing.assert_close(out_chunked, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logdet_chunked, logdet, rtol=1e-5, atol=1e-3)


def test_chunk_setting_is_validated_and_restored():
    with pytest.raises(ValueError, match="values"):
        with chunk_values(-1):
            pass
    from seqflow.nn import chunking

    before = chunking.get_chunk_values()
    with pytest.raises(RuntimeError):
        with chunk_values(7):
            assert chunking.get_chunk_values() == 7
            raise RuntimeError
    assert chunking.get_chunk_values() == before
