"""Streaming (ring buffers, O(1) per step) equals the full pass, for stacks and with priming."""

from __future__ import annotations

import math

import pytest
import torch
from sequence_helpers import (  # noqa: F401  (single_thread is an autouse fixture)
    conditioning_kwargs,
    make_context,
    perturb,
    single_thread,
)

from seqflow import SequenceIAF, SequenceMAF, SequenceStack
from seqflow.nn.streaming import RingBuffer

RTOL, ATOL = 1e-4, 1e-5


def build(kind, channels, cond, layers=2, conditioner="wavenet", seed=0):
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    if conditioner == "wavenet":
        size = dict(residual_channels=8, skip_channels=8, blocks=3)
    else:
        size = dict(hidden_features=8, head_features=8)
    order = [[2, 0, 1], "natural", "reversed"]
    made = []
    for i in range(layers):
        channel_order = order[i % 3] if channels == 3 else "natural"
        layer = cls(channels, conditioner=conditioner, order=channel_order,
                    **size, **conditioning_kwargs(cond))
        made.append(perturb(layer, 0.3, seed=seed + i))
    return SequenceStack(made).eval()


def stack_length(stack) -> int:
    """A whole number of frames covering at least twice the stack's receptive field."""
    field = stack.receptive_field or 10
    return 4 * ((2 * field + 3) // 4 + 1)


def naive_inverse(stack, z, context):
    """Layer after layer, each with one full conditioner pass per element (reference)."""
    for layer in reversed(stack.layers):
        z, _ = layer.naive_sequential(z, context)
    return z


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cond", [False, True])
@pytest.mark.parametrize("conditioner", ["wavenet", "lstm"])
def test_maf_sampling_stream_equals_full_pass(channels, cond, conditioner, device):
    stack = build("maf", channels, cond, conditioner=conditioner).to(device)
    length = stack_length(stack)
    assert stack.receptive_field is None or length >= 2 * stack.receptive_field
    context = make_context(cond, 2, length, device)
    z = torch.randn(2, channels, length, device=device)
    with torch.no_grad():
        x, logdet = stack.inverse(z, context)  # joint streaming, layer by layer per step
        z_full, logdet_full = stack(x, context)  # one pass per layer
        x_naive = naive_inverse(stack, z, context)
    torch.testing.assert_close(z_full, z, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(logdet, -logdet_full, rtol=RTOL, atol=ATOL * length)
    torch.testing.assert_close(x, x_naive, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_stream_with_wider_kernels_and_dilation_cycles(kind, device):
    """Kernel 3 (two past taps per block, read together) and dilations restarting twice."""
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    layers = [perturb(cls(3, residual_channels=8, skip_channels=8, kernel_size=3, blocks=4,
                          cycles=2, order=order, **conditioning_kwargs(True)), seed=i)
              for i, order in enumerate(["natural", [1, 2, 0]])]
    stack = SequenceStack(layers).eval().to(device)
    length = stack_length(stack)
    context = make_context(True, 2, length, device)
    y = torch.randn(2, 3, length, device=device)
    with torch.no_grad():
        if kind == "maf":
            out, logdet = stack.inverse(y, context)  # streams
            back, logdet_back = stack(out, context)
        else:
            out, logdet = stack(y, context)  # streams
            back, logdet_back = stack.inverse(out, context)
    torch.testing.assert_close(back, y, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(logdet, -logdet_back, rtol=RTOL, atol=ATOL * length)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cond", [False, True])
def test_iaf_density_stream_equals_full_pass(channels, cond, device):
    stack = build("iaf", channels, cond, layers=3).to(device)
    length = stack_length(stack)
    context = make_context(cond, 2, length, device)
    x = torch.randn(2, channels, length, device=device)
    with torch.no_grad():
        z, logdet = stack(x, context)  # joint streaming
        x_full, logdet_full = stack.inverse(z, context)  # one pass per layer
    torch.testing.assert_close(x_full, x, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(logdet, -logdet_full, rtol=RTOL, atol=ATOL * length)


@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("channels", [1, 3])
def test_single_layer_direction_equals_driver_and_naive_path(kind, channels):
    """A layer's sequential direction, the driver and the naive path agree."""
    layer = build(kind, channels, cond=True, layers=1).layers[0]
    context = make_context(True, 2, 24)
    y = torch.randn(2, channels, 24)
    sequential = layer.inverse if kind == "maf" else layer.forward
    with torch.no_grad():
        out, logdet = sequential(y, context)
        out_driver, logdet_driver = layer.sequential(y, context)
        out_naive, logdet_naive = layer.naive_sequential(y, context)
    torch.testing.assert_close(out_driver, out, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(out_naive, out, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(logdet_driver, logdet, rtol=RTOL, atol=1e-4)
    torch.testing.assert_close(logdet_naive, logdet, rtol=RTOL, atol=1e-4)


@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("conditioner", ["wavenet", "lstm"])
def test_prime_with_history_then_continue(kind, channels, conditioner):
    stack = build(kind, channels, cond=True, conditioner=conditioner)
    length, split = 48, 21  # the split needs not fall on a frame boundary
    context = make_context(True, 2, length)
    with torch.no_grad():
        if kind == "maf":  # forecasting: data history, sample the continuation
            z = torch.randn(2, channels, length)
            x, _ = stack.inverse(z, context)
            cont, logdet = stack.sequential(z[..., split:], context, history=x[..., :split])
            expected = x[..., split:]
        else:  # live density: noise history, continue the data -> noise direction
            x = torch.randn(2, channels, length)
            z, _ = stack(x, context)
            cont, _ = stack.sequential(x[..., split:], context, history=z[..., :split])
            expected = z[..., split:]
    torch.testing.assert_close(cont, expected, rtol=RTOL, atol=ATOL)


def test_continuation_log_det_adds_up():
    """log|det| of history steps + of the continuation == log|det| of the whole sequence."""
    stack = build("maf", 3, cond=False)
    z = torch.randn(2, 3, 30)
    with torch.no_grad():
        x, logdet = stack.inverse(z)
        _, logdet_head = stack.inverse(z[..., :13])
        _, logdet_cont = stack.sequential(z[..., 13:], history=x[..., :13])
    torch.testing.assert_close(logdet_head + logdet_cont, logdet, rtol=RTOL, atol=1e-4)


def test_ring_buffers_are_sized_by_lookback_not_length():
    """O(1) state per step: buffers hold (kernel - 1) * dilation steps whatever T is."""
    layer = build("maf", 1, cond=False, layers=1).layers[0]
    net = layer.conditioner
    for length in (16, 4096):
        state = net.start_stream(1, None, length)
        sizes = [len(state.input_step.buffer.slots)] + state.pack.lengths
        assert sizes == [net.input_conv.lookback] + [b.conv.lookback for b in net.blocks]
        assert sum(sizes) == net.receptive_field - 1
        assert state.ring.shape[0] == sum(state.pack.lengths)


def test_ring_buffer_wraps():
    buf = RingBuffer(4, torch.zeros(1, 1))
    for t in range(11):
        buf.push(t, torch.full((1, 1), float(t)))
    assert [buf.read(11, lag).item() for lag in (1, 2, 3, 4)] == [10.0, 9.0, 8.0, 7.0]


def _set_step_mode(stack, mode: str):
    for layer in stack.layers:
        layer.conditioner.step_mode = mode
    return stack


@pytest.mark.parametrize("mode", ["eager", "kernel"])
@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("floor", [None, -9.0])
def test_single_channel_step_modes_equal_the_full_pass(mode, kind, dtype, floor):
    """Both single-channel step modes, with kernel 3, restarting dilations, local features and
    global ids, continuing after a history, with the symmetric or the floored log-scale; the
    reference is the one-pass direction."""
    torch.manual_seed(0)  # the inputs below, so that every run checks the same case
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    layers = [perturb(cls(1, residual_channels=8, skip_channels=8, kernel_size=3, blocks=4,
                          cycles=2, log_scale_floor=floor, **conditioning_kwargs(True)), seed=i)
              for i in range(2)]
    stack = _set_step_mode(SequenceStack(layers).eval().to(dtype), mode)
    length, split = stack_length(stack), 13
    context = make_context(True, 3, length, dtype=dtype)
    y = torch.randn(3, 1, length, dtype=dtype)
    with torch.no_grad():
        if kind == "maf":  # sample, then read the noise back in one pass
            out, logdet = stack.inverse(y, context)
            back, logdet_back = stack(out, context)
            cont, _ = stack.sequential(y[..., split:], context, history=out[..., :split])
        else:  # density, then generate the data back in one pass
            out, logdet = stack(y, context)
            back, logdet_back = stack.inverse(out, context)
            cont, _ = stack.sequential(y[..., split:], context, history=out[..., :split])
    tol = dict(rtol=RTOL, atol=ATOL) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(back, y, **tol)
    cont_tol = tol
    if kind == "iaf" and floor is not None and dtype == torch.float32:
        # The IAF's density divides by exp(s) >= exp(floor): its noise amplifies the float32
        # round-off of two equal computations by up to exp(-floor) (about 8100 at -9).
        gain = math.exp(-floor)
        cont_tol = dict(rtol=RTOL * gain, atol=ATOL * gain)
    torch.testing.assert_close(cont, out[..., split:], **cont_tol)
    torch.testing.assert_close(logdet, -logdet_back, rtol=tol["rtol"], atol=tol["atol"] * length)


def test_floored_layers_run_the_kernel(monkeypatch):
    """A speech layer (log-scale floor) streams through the compiled kernel, not step by step."""
    stack = SequenceStack([perturb(SequenceMAF(1, residual_channels=8, skip_channels=8,
                                               blocks=3, log_scale_floor=-9.0), seed=0)]).eval()
    stack.layers[0].conditioner.step_mode = "kernel"
    monkeypatch.setattr("seqflow.transforms.autoregressive._step_one_channel",
                        lambda *a: pytest.fail("stepped instead of running the kernel"))
    with torch.no_grad():
        x, _ = stack.inverse(torch.randn(2, 1, 32))
    assert torch.isfinite(x).all()


def test_auto_mode_runs_the_kernel_only_where_it_applies():
    stack = build("maf", 1, cond=True, layers=1)
    net = stack.layers[0].conditioner
    context = make_context(True, 2, 8)
    with torch.no_grad():
        assert net.start_stream(2, context, 8).runs_sequences
        assert not net.start_stream(64, make_context(True, 64, 8), 8).runs_sequences  # batch
    assert not net.start_stream(2, context, 8).runs_sequences  # recording gradients
    three = build("maf", 3, cond=False, layers=1).layers[0].conditioner
    with torch.no_grad():  # several channels: the batch-vectorized kernel up to its limit
        for batch in (2, 128):
            state = three.start_stream(batch, None, 8)
            assert state.runs_sequences and state.kernel == "channels"
        for batch in (129, 1024):  # then the degree blocks
            state = three.start_stream(batch, None, 8)
            assert state.runs_sequences and state.kernel == "blocks"
        net.step_mode = "kernel"  # one channel above the per-sample kernel's batches
        state = net.start_stream(64, make_context(True, 64, 8), 8)
        assert state.runs_sequences and state.kernel == "channels"
    assert not three.start_stream(2, None, 8).runs_sequences  # recording gradients
    three.step_mode = "kernel"
    with pytest.raises(ValueError, match="records no gradients"):
        three.start_stream(2, None, 8)


@pytest.mark.parametrize("channels", [1, 4, 12])
@pytest.mark.parametrize("batch", [3, 70])
@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("cond,floor", [(False, None), (True, -5.0)])
def test_channel_kernel_equals_the_full_pass(channels, batch, kind, cond, floor):
    """The batch-vectorized kernel (any channel count, a batch over two tiles, channel orders,
    local and global conditioning, both log-scale forms, a history) against the one-pass
    direction and the eager step."""
    torch.manual_seed(channels * 100 + batch)  # the initial weights: a fixed, reproducible case
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    orders = ["natural", "reversed", torch.randperm(channels, generator=torch.Generator()
                                                    .manual_seed(1)).tolist()]
    layers = [perturb(cls(channels, residual_channels=8, skip_channels=8, blocks=3,
                          kernel_size=2 + i % 2, order=orders[i], log_scale_floor=floor,
                          **conditioning_kwargs(cond)), seed=i) for i in range(3)]
    stack = _set_step_mode(SequenceStack(layers).eval(), "kernel")
    length, split = 32, 13
    context = make_context(cond, batch, length)
    generator = torch.Generator().manual_seed(channels + batch)
    y = torch.randn(batch, channels, length, generator=generator)
    with torch.no_grad():
        state = stack.layers[0].conditioner.start_stream(batch, context, length)
        assert state.kernel == ("mono" if channels == 1 and batch <= 32 else "channels")
        if kind == "maf":
            out, logdet = stack.inverse(y, context)  # streams
            back, logdet_back = stack(out, context)
        else:
            out, logdet = stack(y, context)  # streams
            back, logdet_back = stack.inverse(out, context)
        cont, _ = stack.sequential(y[..., split:], context, history=out[..., :split])
        eager, _ = _set_step_mode(stack, "eager").sequential(y, context)
    torch.testing.assert_close(back, y, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(logdet, -logdet_back, rtol=RTOL, atol=ATOL * length * channels)
    gain = 1.0 if kind == "maf" or floor is None else math.exp(-floor)  # see the test above
    torch.testing.assert_close(cont, out[..., split:], rtol=RTOL * gain, atol=ATOL * gain)
    torch.testing.assert_close(eager, out, rtol=RTOL * gain, atol=ATOL * gain)


def test_channel_kernel_in_float64_matches_to_float64_round_off():
    stack = _set_step_mode(build("maf", 3, cond=True).double(), "kernel")
    z = torch.randn(40, 3, 24, dtype=torch.float64)
    context = make_context(True, 40, 24, dtype=torch.float64)
    with torch.no_grad():
        x, _ = stack.inverse(z, context)
        z_back, _ = stack(x, context)
    torch.testing.assert_close(z_back, z, rtol=1e-9, atol=1e-10)


def test_rational_tanh_is_accurate_to_float32_round_off():
    from seqflow.nn import wavenet_kernel

    x = torch.linspace(-12.0, 12.0, 200_001, dtype=torch.float64)
    exact = torch.tanh(x)
    approx = torch.tensor([wavenet_kernel._tanh_rational(v) for v in x[::97].tolist()],
                          dtype=torch.float64)
    assert (approx - exact[::97]).abs().max() < 4 * torch.finfo(torch.float32).eps


def _sample_with_step_mode(mode: str, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stream MAF sampling with ``step_mode`` and the one-pass density of the result."""
    stack = _set_step_mode(build("maf", 3, cond=True).to(device), mode)
    length = stack_length(stack)
    context = make_context(True, 2, length, device)
    z = torch.randn(2, 3, length, device=device)
    with torch.no_grad():
        x, _ = stack.inverse(z, context)
        z_back, _ = stack(x, context)
    return z, x, z_back


@pytest.mark.slow
def test_compiled_step_equals_full_pass():
    """``step_mode="compile"``: torch.compile of the column (compilation takes tens of s)."""
    z, _, z_back = _sample_with_step_mode("compile", torch.device("cpu"))
    torch.testing.assert_close(z_back, z, rtol=RTOL, atol=ATOL)


@pytest.mark.gpu
def test_cuda_graph_step_equals_full_pass():
    z, _, z_back = _sample_with_step_mode("cuda_graph", torch.device("cuda"))
    torch.testing.assert_close(z_back, z, rtol=RTOL, atol=ATOL)


def test_unknown_or_impossible_step_modes_fail_loudly():
    net = build("maf", 1, cond=False, layers=1).layers[0].conditioner
    net.step_mode = "fast"
    with torch.no_grad(), pytest.raises(ValueError, match="step_mode"):
        net.start_stream(1, None, 4)
    net.step_mode = "cuda_graph"
    with torch.no_grad(), pytest.raises(ValueError, match="cuda_graph"):
        net.start_stream(1, None, 4)


@pytest.mark.parametrize("mode", ["eager", "kernel"])
def test_streams_follow_in_place_weight_updates(mode):
    """Packed weights are reused between calls only while no parameter has changed."""
    stack = _set_step_mode(build("maf", 1, cond=False, layers=1), mode)
    z = torch.randn(2, 1, 40)
    with torch.no_grad():
        stack.inverse(z)  # packs and caches the weights
        for p in stack.parameters():
            p.add_(0.1 * torch.randn_like(p))  # an optimizer step, in place
        x, _ = stack.inverse(z)
        z_back, _ = stack(x)
    torch.testing.assert_close(z_back, z, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("channels,batch", [(1, 1), (1, 64), (4, 1), (4, 64), (4, 300)])
@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("cond,floor", [(False, None), (True, -5.0)])
def test_lstm_kernel_equals_the_full_pass(channels, batch, kind, cond, floor):
    """The LSTM's compiled path (two stacked LSTM layers, channel orders, local and global
    conditioning, both log-scale forms, a history) against the one-pass direction and the
    eager step (in float32, and in float64 for the round-off of the float32 path)."""
    torch.manual_seed(0)  # the initial weights, so that every run checks the same case
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    orders = ["reversed", torch.randperm(channels, generator=torch.Generator()
                                         .manual_seed(1)).tolist()]
    layers = [perturb(cls(channels, conditioner="lstm", hidden_features=8, head_features=8,
                          blocks=2, order=orders[i], log_scale_floor=floor,
                          **conditioning_kwargs(cond)), seed=i) for i in range(2)]
    stack = _set_step_mode(SequenceStack(layers).eval(), "kernel")
    length, split = 24, 9
    context = make_context(cond, batch, length)
    generator = torch.Generator().manual_seed(channels + batch)
    y = torch.randn(batch, channels, length, generator=generator)
    with torch.no_grad():
        assert stack.layers[0].conditioner.start_stream(batch, context, length).runs_sequences
        if kind == "maf":
            out, logdet = stack.inverse(y, context)  # streams
            back, logdet_back = stack(out, context)
        else:
            out, logdet = stack(y, context)  # streams
            back, logdet_back = stack.inverse(out, context)
        cont, _ = stack.sequential(y[..., split:], context, history=out[..., :split])
        eager, logdet_eager = _set_step_mode(stack, "eager").sequential(y, context)
        context64 = None if context is None else context.to(torch.float64)
        exact, _ = stack.double().sequential(y.double(), context64)
    torch.testing.assert_close(out, exact.float(), rtol=RTOL, atol=ATOL)
    # A density divides by exp(s) >= exp(floor): it amplifies float32 round-off by up to
    # exp(-floor). The one-pass density reads the MAF's samples back; the IAF streams one.
    loose = {"rtol": RTOL, "atol": ATOL} if floor is None else {
        "rtol": RTOL * math.exp(-floor), "atol": ATOL * math.exp(-floor)}
    tight = {"rtol": RTOL, "atol": ATOL}
    torch.testing.assert_close(back, y, **(loose if kind == "maf" else tight))
    torch.testing.assert_close(logdet, -logdet_back, rtol=RTOL, atol=ATOL * length * channels)
    streamed = tight if kind == "maf" else loose
    torch.testing.assert_close(cont, out[..., split:], **streamed)
    torch.testing.assert_close(eager, out, **streamed)
    torch.testing.assert_close(logdet_eager, logdet, rtol=RTOL, atol=ATOL * length * channels)


def test_lstm_kernel_in_float64_matches_to_float64_round_off():
    stack = _set_step_mode(build("maf", 3, cond=True, conditioner="lstm").double(), "kernel")
    z = torch.randn(5, 3, 24, dtype=torch.float64)
    context = make_context(True, 5, 24, dtype=torch.float64)
    with torch.no_grad():
        x, _ = stack.inverse(z, context)
        z_back, _ = stack(x, context)
    torch.testing.assert_close(z_back, z, rtol=1e-9, atol=1e-10)


def test_lstm_step_modes_dispatch():
    net = build("maf", 3, cond=False, layers=1, conditioner="lstm").layers[0].conditioner
    with torch.no_grad():
        for batch in (1, 1024):
            assert net.start_stream(batch, None, 4).runs_sequences
        net.step_mode = "eager"
        assert not net.start_stream(2, None, 4).runs_sequences
    net.step_mode = "auto"
    assert not net.start_stream(2, None, 4).runs_sequences  # recording gradients
    net.step_mode = "kernel"
    with pytest.raises(ValueError, match="records no gradients"):
        net.start_stream(2, None, 4)
    net.step_mode = "fast"
    with torch.no_grad(), pytest.raises(ValueError, match="step_mode"):
        net.start_stream(2, None, 4)


def test_lstm_kernel_runs_across_progress_chunks():
    """A stream watched in chunks continues its state from one chunk to the next."""
    from seqflow.nn.streaming import stream_progress

    stack = _set_step_mode(build("maf", 3, cond=True, conditioner="lstm"), "kernel")
    z = torch.randn(2, 3, 20)
    context = make_context(True, 2, 20)
    with torch.no_grad():
        whole, _ = stack.inverse(z, context)
        done = []
        with stream_progress(done.append, chunk=7):
            chunked, _ = stack.inverse(z, context)
    assert done == [7, 7, 6]
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)


@pytest.mark.parametrize("channels", [1, 4, 12])
@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("cond,floor", [(False, None), (True, -5.0)])
def test_degree_blocks_equal_the_full_pass(channels, kind, cond, floor):
    """``step_mode="blocks"`` (kernel 2 and 3, channel orders with degrees that own no unit at
    12 channels, local and global conditioning, both log-scale forms, a history) against the
    one-pass direction, the eager step and the float64 step."""
    torch.manual_seed(0)  # the initial weights, so that every run checks the same case
    cls = SequenceMAF if kind == "maf" else SequenceIAF
    orders = ["natural", "reversed", torch.randperm(channels, generator=torch.Generator()
                                                    .manual_seed(1)).tolist()]
    layers = [perturb(cls(channels, residual_channels=8, skip_channels=8, blocks=3,
                          kernel_size=2 + i % 2, order=orders[i], log_scale_floor=floor,
                          **conditioning_kwargs(cond)), seed=i) for i in range(3)]
    stack = _set_step_mode(SequenceStack(layers).eval(), "blocks")
    batch, length, split = 5, 32, 13
    context = make_context(cond, batch, length)
    generator = torch.Generator().manual_seed(channels)
    y = torch.randn(batch, channels, length, generator=generator)
    with torch.no_grad():
        assert stack.layers[0].conditioner.start_stream(batch, context, length).kernel == "blocks"
        if kind == "maf":
            out, logdet = stack.inverse(y, context)  # streams
            back, logdet_back = stack(out, context)
        else:
            out, logdet = stack(y, context)  # streams
            back, logdet_back = stack.inverse(out, context)
        cont, _ = stack.sequential(y[..., split:], context, history=out[..., :split])
        eager, logdet_eager = _set_step_mode(stack, "eager").sequential(y, context)
        context64 = None if context is None else context.to(torch.float64)
        exact, _ = stack.double().sequential(y.double(), context64)
    torch.testing.assert_close(out, exact.float(), rtol=RTOL, atol=ATOL)
    loose = {"rtol": RTOL, "atol": ATOL} if floor is None else {
        "rtol": RTOL * math.exp(-floor), "atol": ATOL * math.exp(-floor)}  # see the LSTM test
    tight = {"rtol": RTOL, "atol": ATOL}
    torch.testing.assert_close(back, y, **(loose if kind == "maf" else tight))
    torch.testing.assert_close(logdet, -logdet_back, rtol=RTOL, atol=ATOL * length * channels)
    streamed = tight if kind == "maf" else loose
    torch.testing.assert_close(cont, out[..., split:], **streamed)
    torch.testing.assert_close(eager, out, **streamed)
    torch.testing.assert_close(logdet_eager, logdet, rtol=RTOL, atol=ATOL * length * channels)


def test_degree_blocks_refuse_gradient_recording():
    net = build("maf", 3, cond=False, layers=1).layers[0].conditioner
    net.step_mode = "blocks"
    with pytest.raises(ValueError, match="records no gradients"):
        net.start_stream(2, None, 8)
