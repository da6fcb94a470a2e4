"""WaveNet conditioner: causal dilated gated convolutions with MADE masks across channels.

The order over ``(batch, channels, time)`` is time-major, then channel (DESIGN.md section 2):
the flow parameters of element ``(t, c)`` depend on every ``(t', .)`` with ``t' < t`` and on
``(t, c')`` for channels earlier in the channel order. Channel ``c`` has degree ``1..C``; hidden
units have degrees ``0..C-1`` (degree 0 sees no current input). Past taps of the causal
convolutions are unrestricted; the current tap and every 1x1 carry a MADE mask; the tanh and
sigmoid halves of a gate share degrees. With one channel this is the classic WaveNet on the
input shifted by one step.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from seqflow.checks import check_positive
from seqflow.nn import wavenet_kernel
from seqflow.nn.conditioner import SequenceConditioner, SequenceStream
from seqflow.nn.context import Context
from seqflow.nn.conv import MaskedCausalConv1d
from seqflow.nn.masks import hidden_degrees
from seqflow.nn.streaming import CausalConvStepper
from seqflow.nn.wavenet_blocks import DegreeBlocks


class GatedResidualBlock(nn.Module):
    """``h -> h + W_res z``, ``skip = W_skip z`` with ``z = tanh(a) * sigmoid(b)``.

    ``(a, b)`` is a masked dilated causal convolution of ``h`` plus optional local
    conditioning (a 1x1 of the upsampled features) and a global embedding.

    Shapes: ``h`` ``(batch, residual, time)``, ``cond`` ``(batch, cond_channels, time)``,
    ``global_ids`` ``(batch,)``; returns ``(h_out, skip)`` with ``skip`` ``(batch, skip, time)``.
    """

    def __init__(
        self,
        degrees: Tensor,
        skip_degrees: Tensor,
        kernel_size: int,
        dilation: int,
        cond_channels: int | None = None,
        num_global_ids: int | None = None,
    ):
        super().__init__()
        self.residual_channels = len(degrees)
        gate_degrees = torch.cat([degrees, degrees])  # tanh and sigmoid halves share degrees
        self.conv = MaskedCausalConv1d(degrees, gate_degrees, kernel_size, dilation)
        self.cond = (
            nn.Conv1d(cond_channels, 2 * len(degrees), 1, bias=False) if cond_channels else None
        )
        self.embed = nn.Embedding(num_global_ids, 2 * len(degrees)) if num_global_ids else None
        self.res_skip = MaskedCausalConv1d(degrees, torch.cat([degrees, skip_degrees]), 1)

    def forward(
        self, h: Tensor, cond: Tensor | None = None, global_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.gate(self.conv(h), h, cond, global_ids)

    def gate(
        self, a: Tensor, h: Tensor, cond: Tensor | None, global_ids: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The block after its dilated convolution ``a`` ``(batch, 2R, time)`` of ``h``."""
        if self.cond is not None:
            a = a + self.cond(cond)
        if self.embed is not None:
            a = a + self.embed(global_ids).unsqueeze(-1)
        r = self.residual_channels
        z = torch.tanh(a[:, :r]) * torch.sigmoid(a[:, r:])
        out = self.res_skip(z)
        return h + out[:, :r], out[:, r:]


class WaveNet(SequenceConditioner):
    """Autoregressive conditioner for ``(batch, channels, time)``: returns ``(shift, raw)``.

    Args:
        channels: ``C``, the number of signal channels (1 for mono audio).
        residual_channels, skip_channels: widths of the residual stream and skip path (the
            head's hidden layer has ``skip_channels`` units).
        kernel_size: taps of every dilated convolution (>= 2).
        blocks: number of gated residual blocks in total.
        cycles: the dilations ``1, 2, 4, ...`` restart ``cycles`` times (``blocks % cycles == 0``).
        cond_channels: width of local features ``(batch, cond_channels, frames)``, or None.
        num_global_ids: number of global ids (embedding rows), or None.
        upsample_factor: samples per frame of the local features (learned upsampler).
        order: order of the channels within a time step (see
            :func:`seqflow.nn.masks.input_degrees`).

    ``forward(y, context)`` returns ``(shift, raw_log_scale)``, each shaped like ``y``; the last
    layer starts at zero so a flow built on it starts as the identity. :meth:`start_stream`
    evaluates it one time step at a time in O(1) work per step; the attribute ``step_mode``
    (see :data:`STEP_MODES`) says how the steps run.

    >>> import torch
    >>> net = WaveNet(2, residual_channels=8, skip_channels=8, blocks=4)
    >>> net.receptive_field
    17
    >>> [s.shape for s in net(torch.zeros(3, 2, 50))]
    [torch.Size([3, 2, 50]), torch.Size([3, 2, 50])]
    """

    def __init__(
        self,
        channels: int,
        residual_channels: int = 64,
        skip_channels: int = 64,
        kernel_size: int = 2,
        blocks: int = 10,
        cycles: int = 1,
        cond_channels: int | None = None,
        num_global_ids: int | None = None,
        upsample_factor: int = 1,
        order: str | Sequence[int] = "natural",
    ):
        check_positive("WaveNet", residual_channels=residual_channels,
                       skip_channels=skip_channels, blocks=blocks, cycles=cycles)
        if kernel_size < 2:
            raise ValueError(f"WaveNet: kernel_size must be >= 2, got {kernel_size}")
        if blocks % cycles:
            raise ValueError(
                f"WaveNet: blocks must be a multiple of cycles, got blocks={blocks}, "
                f"cycles={cycles}"
            )
        skip_deg = hidden_degrees(skip_channels, channels - 1, min_degree=0)
        super().__init__(channels, skip_deg, skip_channels, cond_channels, num_global_ids,
                         upsample_factor, order)
        hid_deg = hidden_degrees(residual_channels, channels - 1, min_degree=0)
        self.input_conv = MaskedCausalConv1d(self.degrees, hid_deg, kernel_size)
        per_cycle = blocks // cycles
        self.blocks = nn.ModuleList(
            GatedResidualBlock(
                hid_deg, skip_deg, kernel_size, 2 ** (i % per_cycle), cond_channels,
                num_global_ids,
            )
            for i in range(blocks)
        )

    step_mode: str = "auto"

    @property
    def receptive_field(self) -> int:
        """Time steps ``t - receptive_field + 1 .. t`` may influence the parameters at ``t``."""
        return 1 + self.input_conv.lookback + sum(b.conv.lookback for b in self.blocks)

    def trunk(
        self, y: Tensor, cond: Tensor | None, ids: Tensor | None
    ) -> tuple[Tensor, list[Tensor]]:
        """Full pass up to the summed skips; also returns every causal layer's input."""
        layer_inputs = [y]
        h = self.input_conv(y)
        skip = 0
        for block in self.blocks:
            layer_inputs.append(h)
            h, s = block(h, cond, ids)
            skip = skip + s
        return skip, layer_inputs

    def features(self, y: Tensor, cond: Tensor | None, ids: Tensor | None) -> Tensor:
        return torch.relu(self.trunk(y, cond, ids)[0])

    def chunk_features(
        self, y: Tensor, cond: Tensor | None, ids: Tensor | None, carry: list[Tensor] | None
    ) -> tuple[Tensor, list[Tensor]]:
        """:meth:`features` of a chunk; ``carry`` holds every causal layer's last ``lookback``
        inputs ``(batch, channels, lookback)`` before the chunk (zeros before the first)."""
        layers = [self.input_conv] + [block.conv for block in self.blocks]
        if carry is None:
            carry = [y.new_zeros(y.shape[0], conv.in_channels, conv.lookback) for conv in layers]
        extended = torch.cat([carry[0], y], dim=-1)
        tails = [extended[..., extended.shape[-1] - self.input_conv.lookback:]]
        h = _convolve_valid(self.input_conv, extended)
        skip = None
        for block, tail in zip(self.blocks, carry[1:], strict=True):
            extended = torch.cat([tail, h], dim=-1)
            tails.append(extended[..., extended.shape[-1] - block.conv.lookback:])
            h, s = block.gate(_convolve_valid(block.conv, extended), h, cond, ids)
            skip = s if skip is None else skip.add_(s)
        return skip.relu_(), tails

    def start_stream(
        self, batch: int, context: Context, length: int, history: Tensor | None = None
    ) -> WaveNetStream:
        """A :class:`WaveNetStream` for ``length`` new steps after an optional ``history``."""
        return WaveNetStream(self, batch, context, length, history)


def _convolve_valid(conv: MaskedCausalConv1d, x: Tensor) -> Tensor:
    """``conv`` over ``x`` ``(batch, in, lookback + n)`` without padding: ``(batch, out, n)``."""
    return F.conv1d(x, conv.effective_weight(), conv.bias, dilation=conv.dilation)


class WaveNetStream(SequenceStream):
    """Step-by-step evaluation of a :class:`WaveNet`: O(1) work per step, few kernels per step.

    Per time step the work is one column of every layer, independent of the sequence length.
    The weights are packed once per stream (:class:`PackedBlocks`): the past taps of every
    block read values known before the step starts, so one gather from a single ring of past
    residual inputs and one batched matmul give every block's past contribution, its bias and
    its local conditioning; then each block costs one matmul for its current tap, the gate and
    one matmul for the residual, and one matmul applies all skip 1x1s to the concatenated
    gates. Biases of the residual path are folded into the gate biases (the ring stores the
    residual stream minus its constant offset), so no per-block bias additions remain.

    The column (blocks, skips and head) runs as chosen by ``net.step_mode`` (see
    :data:`STEP_MODES`); every mode computes the same function.

    With ``C > 1`` channels the column is recomputed once per channel as it becomes known (the
    past-tap part is reused), so a time step costs ``C`` columns. ``history`` ``(batch, C, T0)``
    primes the buffers with one full pass; the context must then cover ``T0 + length`` samples.
    Under autograd the ring is updated out of place (each step copies it), so gradients flow
    through the stream at a cost proportional to the receptive field per step.
    """

    # Local conditioning is projected for this many values (steps x batch) at a time.
    COND_CHUNK = 1 << 14

    def __init__(
        self, net: WaveNet, batch: int, context: Context, length: int, history: Tensor | None
    ):
        past = 0 if history is None else history.shape[-1]
        ref = net.head_out.weight
        super().__init__(net, batch, ref, past)
        self.net = net
        self.batch = batch
        self.recording = torch.is_grad_enabled()
        cond, ids = net.conditioning(context, batch, past + length)
        self.pack = pack = PackedBlocks.of(net, self.recording)
        self.input_step = CausalConvStepper(net.input_conv, batch, ref.new_zeros(()))
        self.bias = pack.gate_bias.unsqueeze(1)  # (L, 1, 2R)
        if ids is not None:
            self.bias = self.bias + pack.embed(net, ids)  # (L, batch, 2R)
        self.cond = cond
        self._cond_start, self._cond_bias = 0, None
        self.runs_sequences = self._use_kernel(net.step_mode, batch, ref)
        # The degree-block path keeps the block inputs themselves in its ring (zero before
        # the first step), the other paths their offset-free part (see PackedBlocks).
        self.ring_holds_inputs = self.runs_sequences and self.kernel == "blocks"
        self.ring = (pack.zero_ring(batch, ref) if self.ring_holds_inputs
                     else pack.empty_ring(batch))
        self.column = self._column_function(net.step_mode, batch, ref)
        self.layer_inputs: Tensor | None = None
        self._kernel_args = None
        self._pre_t = -1
        self._pre = ref.new_empty(0)
        if history is not None:
            self._prime(history, cond, ids)

    def _use_kernel(self, mode: str, batch: int, ref: Tensor) -> bool:
        """Whether :meth:`run_sequence` applies, and which path it runs (``self.kernel``:
        ``"mono"``, ``"channels"`` or ``"blocks"``; see :data:`STEP_MODES`)."""
        if mode not in STEP_MODES:
            raise ValueError(f"WaveNet: step_mode must be one of {STEP_MODES}, got {mode!r}")
        mono = self.channels == 1
        if mode == "blocks":
            self.kernel = "blocks"
            if self.recording:
                raise ValueError("WaveNet: step_mode='blocks' cannot run: it records no "
                                 "gradients (use torch.no_grad())")
            return True
        self.kernel = "mono" if mono and batch <= KERNEL_MAX_BATCH else "channels"
        if mode not in ("auto", "kernel"):
            return False
        problem = None
        if not wavenet_kernel.available():
            problem = "numba is not installed"
        elif ref.device.type != "cpu" or ref.dtype not in (torch.float32, torch.float64):
            problem = f"it runs float32/float64 on CPU, got {ref.dtype} on {ref.device}"
        elif self.recording:
            problem = "it records no gradients (use torch.no_grad())"
        if mode == "kernel" and problem is not None:
            raise ValueError(f"WaveNet: step_mode='kernel' cannot run: {problem}")
        if problem is not None:
            return False
        if mode == "kernel":
            return True
        if not mono and batch > CHANNEL_KERNEL_MAX_BATCH:
            self.kernel = "blocks"
            return True
        return batch <= (KERNEL_MAX_BATCH if mono else CHANNEL_KERNEL_MAX_BATCH)

    def _column_function(self, mode: str, batch: int, ref: Tensor):
        """``(pre, h0) -> (head output, block inputs)`` for the requested step mode."""
        pack = self.pack
        if self.recording or mode not in ("compile", "cuda_graph"):  # fresh tensors if recording
            work = None if self.recording else pack.new_work(batch, ref)
            return lambda pre, h: pack.column(pre, h, work)
        if mode == "compile":
            return lambda pre, h: compiled_column()(pre, h, *pack.column_weights())
        if ref.device.type != "cuda":
            raise ValueError(f"WaveNet: step_mode='cuda_graph' needs a CUDA model, got "
                             f"{ref.device}")
        return GraphedColumn(lambda pre, h: pack.column(pre, h, None))

    def _prime(self, history: Tensor, cond: Tensor | None, ids: Tensor | None) -> None:
        steps = history.shape[-1]
        hist_cond = None if cond is None else cond[..., :steps]
        _, inputs = self.net.trunk(history, hist_cond, ids)
        self.input_step.buffer.fill(inputs[0])
        self.ring = self.pack.fill_ring(self.ring, inputs[1:], steps,
                                        offsets=not self.ring_holds_inputs)

    def _bias_at(self, t: int) -> Tensor:
        """Gate bias of every block at step ``t`` ``(L, batch or 1, 2R)``, conditioning included."""
        if self.cond is None:
            return self.bias
        block = self._cond_bias
        if block is None or not self._cond_start <= t < self._cond_start + block.shape[0]:
            steps = max(1, self.COND_CHUNK // self.batch)
            self._cond_start = t
            local = self.cond[..., t:t + steps]  # (batch, cond, steps)
            block = self.pack.local_bias(local) + self.bias  # (steps, L, batch, 2R)
            self._cond_bias = block
        return block[t - self._cond_start]

    def params(self, channel: int) -> Tensor:
        t = self.t
        if self._pre_t != t:  # the past taps are reused by every channel of the step
            self._pre = self.pack.past_preactivations(self.ring, t, self._bias_at(t))
            self._pre_t = t
        out, self.layer_inputs = self.column(self._pre, self.input_step(t, self.x_now))
        if self.channels == 1:
            return out
        return out.view(-1, 2, self.channels)[:, :, channel]

    runs_floored = True

    def run_sequence(self, u: Tensor, bound: float, inverse: bool,
                     floor: float | None = None) -> tuple[Tensor, Tensor]:
        """The next ``T`` steps of a flow layer on this conditioner in compiled loops.

        ``u`` ``(batch, 1, T)`` is the layer's input (noise when ``inverse``, data otherwise);
        returns the result ``(batch, 1, T)`` and the summed log-scales ``(batch,)`` of
        ``bound_log_scale(raw, bound, floor)``. Only when :attr:`runs_sequences` is true.
        """
        if floor is not None and not floor < 0:
            raise ValueError(f"WaveNetStream.run_sequence: floor must be < 0 or None, got {floor}")
        if not self.runs_sequences:
            raise ValueError("WaveNetStream.run_sequence: the compiled kernel does not apply "
                             "to this stream (see WaveNet.step_mode)")
        if self.layer_inputs is not None:
            raise ValueError("WaveNetStream.run_sequence: called in the middle of a step")
        if self.kernel == "channels":
            return self._run_channels(u, bound, inverse, floor)
        if self.kernel == "blocks":
            if self._kernel_args is None:
                self._kernel_args = DegreeBlocks(self.net, self.pack, self.input_step,
                                                 self.batch, self.ring)
            return self._kernel_args.run(self, u, bound, inverse, floor)
        if self._kernel_args is None:
            self._kernel_args = self._kernel_arrays()
        x_ring, weights = self._kernel_args
        batch, _, steps = u.shape
        inputs = u[:, 0].contiguous()
        out = torch.empty_like(inputs)
        logdet = inputs.new_zeros(batch)
        chunk = steps if self.cond is None else max(1, self.COND_CHUNK // batch)
        for start in range(0, steps, chunk):
            end = min(start + chunk, steps)
            if self.cond is None:
                bias = self.bias.unsqueeze(0)
            else:
                bias = self.pack.local_bias(self.cond[..., self.t:self.t + end - start])
                bias = bias + self.bias
            piece = inputs[:, start:end].contiguous()  # contiguous: one compiled variant
            result = torch.empty_like(piece)
            wavenet_kernel.run(
                piece.numpy(), result.numpy(), logdet.numpy(), self.t, self.ring.numpy(), x_ring,
                *weights[:2], bias.contiguous().numpy(), *weights[2:], float(bound),
                0.0 if floor is None else float(floor), inverse,
            )
            out[:, start:end] = result
            self.t += end - start
        return out.unsqueeze(1), logdet

    def _run_channels(self, u: Tensor, bound: float, inverse: bool,
                      floor: float | None) -> tuple[Tensor, Tensor]:
        """:meth:`run_sequence` through :func:`seqflow.nn.wavenet_kernel.run_channels`."""
        if self._kernel_args is None:
            self._kernel_args = self.pack.channel_kernel_arrays(self.net, self.input_step,
                                                                self.ring, self.t)
        ring, x_ring, gate_order, weights = self._kernel_args
        batch, _, steps = u.shape
        inputs = u.contiguous()
        out = torch.empty_like(inputs)
        logdet = inputs.new_zeros(batch)
        chunk = steps if self.cond is None else max(1, self.COND_CHUNK // batch)
        exact = inputs.dtype == torch.float64  # float32: the vectorized rational tanh
        for start in range(0, steps, chunk):
            end = min(start + chunk, steps)
            if self.cond is None:
                bias = self.bias.unsqueeze(0)
            else:
                bias = self.pack.local_bias(self.cond[..., self.t:self.t + end - start])
                bias = bias + self.bias
            bias = bias[..., gate_order].transpose(-1, -2).contiguous()  # (s, L, 2R, batch)
            piece = inputs[..., start:end].contiguous()
            result = torch.empty_like(piece)
            wavenet_kernel.run_channels(
                piece.numpy(), result.numpy(), logdet.numpy(), self.t, ring, x_ring,
                *weights[:2], bias.numpy(), *weights[2:], float(bound),
                0.0 if floor is None else float(floor), inverse, exact,
            )
            out[..., start:end] = result
            self.t += end - start
        return out, logdet

    def _kernel_arrays(self):
        """The x history ring ``(K - 1, batch)`` and the weights as numpy arrays."""
        taps = self.pack.kernel_size - 1
        x_ring = np.zeros((taps, self.batch), dtype=self.ring.numpy().dtype)
        for lag in range(1, taps + 1):  # what the eager input stepper holds before step t
            x_ring[(self.t - lag) % taps] = self.input_step.buffer.read(self.t, lag)[:, 0]
        return x_ring, self.pack.kernel_weights(self.input_step)

    def close_step(self) -> None:
        # The hidden units of the last params() call are exact: hidden degrees stop at C - 1,
        # so none of them reads the last channel of the current step.
        if self.layer_inputs is None:  # a step without params() calls (no channel order)
            self.params(0)
        self.input_step.push(self.t, self.x_now)
        self.ring = self.pack.push(self.ring, self.t, self.layer_inputs,
                                   in_place=not self.recording)
        self.layer_inputs = None


STEP_MODES = ("auto", "eager", "kernel", "blocks", "compile", "cuda_graph")
"""How :class:`WaveNetStream` runs (set ``WaveNet.step_mode``; default ``"auto"``).

* ``"auto"``: on CPU, in float32/float64, without gradient recording: with more than one
  channel ``"kernel"`` at a batch of at most :data:`CHANNEL_KERNEL_MAX_BATCH` and
  ``"blocks"`` above it; with one channel ``"kernel"`` at a batch of at most
  :data:`KERNEL_MAX_BATCH` and ``"eager"`` above it. Elsewhere ``"eager"``. These are the
  fastest choices measured (``docs/benchmarks.md``, ``tools/bench.py steps``).
* ``"eager"``: a column is a few dozen PyTorch operations; the reference.
* ``"kernel"``: whole sequences of a layer in numba-compiled loops
  (:mod:`seqflow.nn.wavenet_kernel`): CPU, float32/float64, no gradient recording. One channel
  at a batch of at most :data:`KERNEL_MAX_BATCH` runs the per-sample loop ``run``; every other
  shape runs ``run_channels``, vectorized over tiles of :data:`CHANNEL_KERNEL_TILE` samples,
  which computes, for each channel in the order, only the hidden units of the degree that
  channel's parameters newly need (one column per step in all, not one per channel).
  Step-by-step protocol calls (``params``/``feed``) still run eagerly.
* ``"blocks"``: whole sequences of a layer as PyTorch matmuls over the batch, one MADE degree
  block at a time (:class:`seqflow.nn.wavenet_blocks.DegreeBlocks`): one column per step in
  all, every product a ``torch.addmm`` with the batch as its long side, so that at large
  batches BLAS does the work. Any device and float dtype, no gradient recording. Its ring
  holds the block inputs themselves and starts as lazily allocated zeros, so a short stream
  at a large batch does not pay for writing the whole receptive field.
* ``"compile"``: the column through ``torch.compile`` (compiled once per process and batch
  size; the first call pays the compilation).
* ``"cuda_graph"``: the column captured once per stream in a CUDA graph and replayed at every
  step (CUDA models; without gradient recording, else the eager step runs).
"""

_PACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

KERNEL_MAX_BATCH = 32
"""Largest one-channel batch that runs the per-sample kernel (above: the batch-vectorized one)."""

CHANNEL_KERNEL_MAX_BATCH = 128
"""Largest batch for which ``"auto"`` runs the channel kernel with more than one channel
(above it: ``"blocks"``). Measured on one thread (10 blocks x 32 units): at 64 paths the
kernel took about half the time of the degree blocks at 4 and 12 channels; at 128 the two
split (blocks 1.8x faster at 4 channels, the kernel 1.6x at 12); at 256 and 1024 the degree
blocks were 3x to 8x faster, the kernel also copying the ring (``rows x R x batch`` values)
into its layout once per stream (``docs/benchmarks.md``)."""

CHANNEL_KERNEL_TILE = 64
"""Samples per batch tile of :func:`seqflow.nn.wavenet_kernel.run_channels`."""

_COMPILED = None


def compiled_column():
    """:func:`column` through ``torch.compile``, created on first use."""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(column, dynamic=False, fullgraph=True)
    return _COMPILED


def column(
    pre: Tensor, h: Tensor, current: list[Tensor], residual: list[Tensor], skip_weight: Tensor,
    skip_bias: Tensor, head: tuple[Tensor, Tensor, Tensor, Tensor],
    work: list[tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """One column of the WaveNet above its input convolution (see :class:`PackedBlocks`).

    ``pre`` ``(L, batch, 2R)``: every block's gate input without its current tap; ``h``
    ``(batch, R)``: the first block's input. Returns the head's output ``(batch, 2C)`` and the
    input of every block ``(L, batch, R)`` (residual offsets removed). ``work``: preallocated
    gate inputs and views of their tanh halves (only without gradient recording).
    """
    inputs, gates = [], []
    r = h.shape[1]
    for i, p in enumerate(pre.unbind(0)):
        inputs.append(h)
        if work is None:
            a = torch.addmm(p, h, current[i])
            a[:, :r].tanh_()
        else:
            a = torch.addmm(p, h, current[i], out=work[i][0])
            work[i][1].tanh_()
        z = F.glu(a, 1)  # tanh(a[:, :R]) * sigmoid(a[:, R:])
        gates.append(z)
        if i < len(residual):  # the last block's residual output feeds nothing
            h = torch.addmm(h, z, residual[i])
    skip = torch.addmm(skip_bias, torch.cat(gates, dim=1), skip_weight).relu_()
    w1, b1, w2, b2 = head
    out = torch.addmm(b2, torch.addmm(b1, skip, w1).relu_(), w2)
    return out, torch.stack(inputs)


class GraphedColumn:
    """A column function captured in a CUDA graph on its first call and replayed after.

    Inputs are copied into static buffers; the returned tensors are the graph's static
    outputs, overwritten by the next call.
    """

    def __init__(self, fn):
        self.fn = fn
        self.graph = None

    def __call__(self, pre: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.graph is None:
            self.pre, self.h = pre.clone(), h.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the capture, as CUDA graphs need
                for _ in range(2):
                    self.fn(self.pre, self.h)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self.fn(self.pre, self.h)
        self.pre.copy_(pre)
        self.h.copy_(h)
        self.graph.replay()
        return self.out


class PackedBlocks:
    """The gated residual blocks of a :class:`WaveNet` packed for one-column-at-a-time work.

    * ``current`` ``L x (R, 2R)``: current taps; ``past`` ``(L, (K - 1) R, 2R)``: past taps of
      every block, stacked in the order of the ring reads.
    * ``residual`` ``(L - 1) x (R, R)``: residual 1x1s; ``skip_weight`` ``(L R, skip)`` and the
      summed ``skip_bias``: every skip 1x1 at once.
    * The residual stream entering block ``i`` is ``h_i = g_i + offset_i`` with the constant
      ``offset_i`` = sum of the residual biases of the blocks before ``i``; only ``g_i`` is
      computed, and ``offset_i`` times the block's taps sits in ``gate_bias`` ``(L, 2R)``.
    * The ring holds ``g_i`` at the last ``(K - 1) d_i`` steps of block ``i`` (dilation
      ``d_i``), all blocks in one ``(rows, batch, R)`` tensor; ``read_rows`` and
      ``write_rows`` ``(period, ...)`` give the rows of step ``t`` at index ``t % period``.
      Rows before the first step hold ``-offset_i`` (``h_i = 0``: the causal zero padding).
    """

    def __init__(self, net: WaveNet):
        blocks = list(net.blocks)
        device = net.head_out.weight.device
        self.blocks = len(blocks)
        self.r = r = blocks[0].residual_channels
        self.kernel_size = k = net.input_conv.kernel_size[0]
        taps = [b.conv.tap_weights() for b in blocks]
        res_skip = [(b.res_skip.tap_weights()[0], b.res_skip.bias) for b in blocks]
        biases = [bias[:r] for _, bias in res_skip]
        offsets = [torch.zeros_like(biases[0])]
        for bias in biases[:-1]:
            offsets.append(offsets[-1] + bias)
        self.offsets = torch.stack(offsets)  # (L, R)
        self.current = [current for current, _ in taps]
        self.past = torch.stack([torch.cat([w for _, w in past], dim=0) for _, past in taps])
        all_taps = [current + sum(w for _, w in past) for current, past in taps]
        self.gate_bias = torch.stack([
            b.conv.bias + off @ w for b, off, w in zip(blocks, offsets, all_taps, strict=True)
        ])
        self.residual = [w[:, :r] for w, _ in res_skip[:-1]]
        self.skip_weight = torch.cat([w[:, r:] for w, _ in res_skip])
        self.skip_bias = torch.stack([bias[r:] for _, bias in res_skip]).sum(0)
        (w1, b1), (w2, b2) = net.head_weights()
        self.head = (w1, b1, w2, b2)
        self.cond_weight = None
        if blocks[0].cond is not None:  # (cond, L * 2R): every block's local 1x1
            self.cond_weight = torch.cat([b.cond.weight[:, :, 0] for b in blocks]).t()
        # Ring layout: block i owns rows offset[i] .. offset[i] + (K - 1) d_i.
        dilations = [b.conv.dilation[0] for b in blocks]
        self.lengths = [(k - 1) * d for d in dilations]
        starts = [0]
        for n in self.lengths[:-1]:
            starts.append(starts[-1] + n)
        self.starts = starts
        self.rows = sum(self.lengths)
        period = math.lcm(*self.lengths)
        t = torch.arange(period)[:, None]
        start, length = torch.tensor(starts), torch.tensor(self.lengths)
        self.write_rows = (start + t % length).to(device)  # (period, L)
        lags = torch.tensor([[j * d for j in range(1, k)] for d in dilations])  # (L, K - 1)
        read = start[:, None] + (t[:, :, None] - lags) % length[:, None]  # (period, L, K - 1)
        self.read_rows = read.reshape(period, -1).to(device)
        self.period = period
        self._kernel_weights: list[np.ndarray] | None = None

    @classmethod
    def of(cls, net: WaveNet, recording: bool) -> PackedBlocks:
        """The packed blocks of ``net``, reused while its parameters and buffers are unchanged
        (not while recording gradients: then the packing is part of the graph)."""
        if recording:
            return cls(net)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device)
                    for t in (*net.parameters(), *net.buffers()))
        cached = _PACKED.get(net)
        if cached is None or cached[0] != key:
            cached = (key, cls(net))
            _PACKED[net] = cached
        return cached[1]

    def kernel_weights(self, input_step: CausalConvStepper) -> list[np.ndarray]:
        """The weights in the layouts of :mod:`seqflow.nn.wavenet_kernel` (numpy, cached)."""
        if self._kernel_weights is None:
            taps = self.kernel_size - 1
            residual = torch.stack([*self.residual,
                                    torch.zeros_like(self.current[0][:, :self.r])])
            in_past = torch.stack([w[0] for _, w in input_step.past])
            w1, b1, w2, b2 = self.head
            arrays = [
                self.read_rows.view(self.period, self.blocks, taps), self.write_rows,
                self.past.view(self.blocks, taps, self.r, 2 * self.r), torch.stack(self.current),
                residual, self.skip_weight.view(self.blocks, self.r, -1), self.skip_bias,
                in_past, input_step.bias, w1, b1, w2, b2,
            ]
            self._kernel_weights = [a.detach().contiguous().numpy() for a in arrays]
        return self._kernel_weights

    def channel_kernel_arrays(self, net: WaveNet, input_step: CausalConvStepper, ring: Tensor,
                              t: int) -> tuple[np.ndarray, np.ndarray, Tensor, list]:
        """State and weights in the layouts of :func:`seqflow.nn.wavenet_kernel.run_channels`.

        Hidden, skip and head units are sorted by degree, so the units a channel may read
        are a prefix; channels are listed in the autoregressive order. Returns the ring
        ``(rows, R, batch)`` and the input history ``(K - 1, C, batch)`` (both copied from
        the stream's state before step ``t``; the ring in tiles of :data:`CHANNEL_KERNEL_TILE`
        samples ``(tiles, rows, R, tile)``), the gate columns in that order, and the weights.
        """
        deg = net.blocks[0].conv.in_degrees
        skip_deg = net.head_hidden.in_degrees
        head_deg = net.head_hidden.out_degrees
        order = net.degrees.argsort()
        channels, r, taps = len(order), self.r, self.kernel_size - 1
        pr, ps, ph = (d.argsort(stable=True) for d in (deg, skip_deg, head_deg))
        gates = torch.cat([pr, r + pr])
        ends = [torch.tensor([int((d <= p).sum()) for p in range(channels)])
                for d in (deg, skip_deg, head_deg)]
        residual = torch.stack([*self.residual, torch.zeros_like(self.current[0][:, :r])])
        current_in, _ = net.input_conv.tap_weights()
        in_past = torch.stack([w for _, w in input_step.past])  # (K - 1, C, R)
        w1, b1, w2, b2 = self.head
        outputs = torch.cat([order, channels + order])
        arrays = [
            self.read_rows.view(self.period, self.blocks, taps), self.write_rows,
            self.past.view(self.blocks, taps, r, 2 * r)[:, :, pr][..., gates],
            torch.stack(self.current)[:, pr][..., gates], residual[:, pr][..., pr],
            self.skip_weight.view(self.blocks, r, -1)[:, pr][..., ps], self.skip_bias[ps],
            in_past[:, order][..., pr], current_in[order][:, pr], input_step.bias[pr],
            w1[ps][:, ph], b1[ph], w2[ph][:, outputs], b2[outputs], order, *ends,
        ]
        weights = [a.detach().contiguous().numpy() for a in arrays]
        # Batch tiles of CHANNEL_KERNEL_TILE samples, each tile's ring contiguous.
        batch = ring.shape[1]
        width = min(batch, CHANNEL_KERNEL_TILE)
        tiles = -(-batch // width)
        padded = F.pad(ring[..., pr], (0, 0, 0, tiles * width - batch))
        kernel_ring = rearrange(padded, "n (k w) r -> k n r w", w=width).contiguous().numpy()
        x_ring = np.empty((taps, channels, batch), dtype=kernel_ring.dtype)
        for lag in range(1, taps + 1):  # slot (t - lag) % taps holds the input at t - lag
            x_ring[(t - lag) % taps] = input_step.buffer.read(t, lag)[:, order].t().numpy()
        return kernel_ring, x_ring, gates, weights

    def column_weights(self) -> tuple:
        """The weight arguments of :func:`column`."""
        return self.current, self.residual, self.skip_weight, self.skip_bias, self.head

    def column(self, pre: Tensor, h: Tensor, work: list | None) -> tuple[Tensor, Tensor]:
        """:func:`column` with these weights."""
        return column(pre, h, *self.column_weights(), work)

    def new_work(self, batch: int, like: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Preallocated gate inputs of every block and views of their tanh halves."""
        gates = like.new_empty(self.blocks, batch, 2 * self.r)
        return [(a, a[:, :self.r]) for a in gates.unbind(0)]

    def embed(self, net: WaveNet, ids: Tensor) -> Tensor:
        """Global embeddings of every block ``(L, batch, 2R)``."""
        return torch.stack([b.embed(ids) for b in net.blocks])

    def local_bias(self, local: Tensor) -> Tensor:
        """Local features ``(batch, cond, steps)`` -> block terms ``(steps, L, batch, 2R)``."""
        out = torch.einsum("bcs,cg->sbg", local, self.cond_weight)
        return rearrange(out, "s b (l g) -> s l b g", l=self.blocks)

    def empty_ring(self, batch: int) -> Tensor:
        """The ring before the first step: ``-offset_i`` in block ``i``'s rows."""
        init = torch.cat([
            (-off).expand(n, -1) for off, n in zip(self.offsets, self.lengths, strict=True)
        ])
        return init.unsqueeze(1).expand(-1, batch, -1).contiguous()

    def zero_ring(self, batch: int, like: Tensor) -> Tensor:
        """A ring of zeros ``(rows, batch, R)`` (block inputs before the first step). On CPU
        its pages are allocated lazily (``numpy.zeros``), so a short stream at a large batch
        touches only the rows it reads and writes, not all ``rows x batch x R`` values."""
        shape = (self.rows, batch, self.r)
        if like.device.type == "cpu":
            dtype = torch.empty((), dtype=like.dtype).numpy().dtype
            return torch.from_numpy(np.zeros(shape, dtype=dtype))
        return like.new_zeros(shape)

    def fill_ring(self, ring: Tensor, inputs: list[Tensor], steps: int,
                  offsets: bool = True) -> Tensor:
        """Load every block's input ``(batch, R, T0)`` at the steps before ``T0`` into the ring
        (minus its offset, unless ``offsets`` is false: a ring of :meth:`zero_ring`)."""
        ring = ring.clone()
        for start, n, off, h in zip(self.starts, self.lengths, self.offsets, inputs, strict=True):
            taus = torch.arange(max(0, steps - n), steps)
            rows = start + taus % n
            ring[rows] = rearrange(h[..., taus], "b r s -> s b r") - (off if offsets else 0)
        return ring

    def past_preactivations(self, ring: Tensor, t: int, bias: Tensor) -> Tensor:
        """Every block's gate input minus its current tap at step ``t``: ``(L, batch, 2R)``."""
        reads = ring.index_select(0, self.read_rows[t % self.period])
        if self.kernel_size > 2:  # (L (K - 1), batch, R) -> (L, batch, (K - 1) R)
            reads = rearrange(reads, "(l k) b r -> l b (k r)", l=self.blocks)
        return torch.baddbmm(bias, reads, self.past)

    def push(self, ring: Tensor, t: int, inputs: Tensor, in_place: bool) -> Tensor:
        """Store every block's input ``(L, batch, R)`` at step ``t`` (out of place if asked)."""
        rows = self.write_rows[t % self.period]
        if in_place:
            return ring.index_copy_(0, rows, inputs)
        return ring.index_copy(0, rows, inputs)
