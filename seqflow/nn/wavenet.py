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

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from seqflow.checks import check_positive
from seqflow.nn.conditioner import SequenceConditioner, SequenceStream
from seqflow.nn.context import Context
from seqflow.nn.conv import MaskedCausalConv1d
from seqflow.nn.masks import hidden_degrees
from seqflow.nn.streaming import CausalConvStepper, RingBuffer


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
        a = self.conv(h)
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
    evaluates it one time step at a time in O(1) work per step.

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

    def start_stream(
        self, batch: int, context: Context, length: int, history: Tensor | None = None
    ) -> WaveNetStream:
        """A :class:`WaveNetStream` for ``length`` new steps after an optional ``history``."""
        return WaveNetStream(self, batch, context, length, history)


class WaveNetStream(SequenceStream):
    """Step-by-step evaluation of a :class:`WaveNet` with one ring buffer per causal layer.

    Per time step the work is one column of every layer (independent of the sequence length).
    The past taps of all blocks read values known before the step starts, so they are applied
    to every block at once with one batched matmul per step; only the current taps, the gates
    and the residual 1x1s run block after block, and the skip 1x1s run once on all gates
    together. With ``C > 1`` channels the column is recomputed once per channel as it becomes
    known (the past-tap part is reused), so a time step costs ``C`` columns. ``history``
    ``(batch, C, T0)`` primes the buffers with one full pass; the context must then cover
    ``T0 + length`` samples.
    """

    def __init__(
        self, net: WaveNet, batch: int, context: Context, length: int, history: Tensor | None
    ):
        past = 0 if history is None else history.shape[-1]
        ref = net.head_out.weight
        super().__init__(net, batch, ref, past)
        self.net = net
        zero = ref.new_zeros(())
        cond, ids = net.conditioning(context, batch, past + length)
        blocks = list(net.blocks)
        r = blocks[0].residual_channels
        self.r = r
        self.input_step = CausalConvStepper(net.input_conv, batch, zero)
        self.block_buffers = [
            RingBuffer(b.conv.lookback, ref.new_zeros(batch, r)) for b in blocks
        ]
        taps = [b.conv.tap_weights() for b in blocks]
        self.current = [current for current, _ in taps]  # (R, 2R) each
        self.lags = [[lag for lag, _ in past_taps] for _, past_taps in taps]
        # (L, (K - 1) * R, 2R): block i's past taps stacked to match its concatenated reads.
        self.past_weight = torch.stack([torch.cat([w for _, w in p], dim=0) for _, p in taps])
        # Gate bias of every block, (L, batch or 1, 2R): conv bias + global embedding.
        gate_bias = torch.stack([b.conv.bias for b in blocks]).unsqueeze(1)
        if ids is not None:
            gate_bias = gate_bias + torch.stack([b.embed(ids) for b in blocks])
        self.gate_bias = gate_bias
        self.cond = None
        if cond is not None:
            self.cond_weight = torch.cat([b.cond.weight[:, :, 0] for b in blocks]).t()
            self.cond = rearrange(cond, "b c t -> t b c").contiguous()  # (T, batch, cond)
        res_skip = [(b.res_skip.tap_weights()[0], b.res_skip.bias) for b in blocks]
        self.residual = [(w[:, :r], bias[:r]) for w, bias in res_skip]
        self.skip_weight = torch.cat([w[:, r:] for w, _ in res_skip])  # (L * R, skip)
        self.skip_bias = torch.stack([bias[r:] for _, bias in res_skip]).sum(0)
        self.layer_inputs: list[Tensor] = []
        self._pre_t = -1
        self._pre: tuple[Tensor, ...] = ()
        if history is not None:
            self._prime(history, cond, ids)

    def _prime(self, history: Tensor, cond: Tensor | None, ids: Tensor | None) -> None:
        steps = history.shape[-1]
        hist_cond = None if cond is None else cond[..., :steps]
        _, inputs = self.net.trunk(history, hist_cond, ids)
        self.input_step.buffer.fill(inputs[0])
        for buffer, x in zip(self.block_buffers, inputs[1:], strict=True):
            buffer.fill(x)

    def _past_preactivations(self) -> tuple[Tensor, ...]:
        """Every block's gate input minus its current tap at step ``t``: ``L x (batch, 2R)``."""
        t = self.t
        reads = torch.stack([
            torch.cat([buffer.read(t, lag) for lag in lags], dim=1) if len(lags) > 1
            else buffer.read(t, lags[0])
            for buffer, lags in zip(self.block_buffers, self.lags, strict=True)
        ])  # (L, batch, (K - 1) * R)
        bias = self.gate_bias
        if self.cond is not None:
            local = rearrange(self.cond[t] @ self.cond_weight, "b (l g) -> l b g", l=len(reads))
            bias = bias + local
        return torch.baddbmm(bias, reads, self.past_weight).unbind(0)

    def step_features(self) -> Tensor:
        """``relu(skip)`` ``(batch, skip)`` at step ``t`` (the past taps are reused per channel)."""
        if self._pre_t != self.t:
            self._pre, self._pre_t = self._past_preactivations(), self.t
        h = self.input_step(self.t, self.x_now)
        inputs, gates = [], []
        last = len(self._pre) - 1
        for i, pre in enumerate(self._pre):
            inputs.append(h)
            tanh_in, sigmoid_in = torch.addmm(pre, h, self.current[i]).chunk(2, dim=1)
            z = torch.tanh(tanh_in) * torch.sigmoid(sigmoid_in)
            gates.append(z)
            if i < last:  # the last block's residual output feeds nothing
                w, b = self.residual[i]
                h = torch.addmm(h, z, w) + b
        self.layer_inputs = inputs
        return torch.relu(torch.addmm(self.skip_bias, torch.cat(gates, dim=1), self.skip_weight))

    def close_step(self) -> None:
        # The hidden units of the last params() call are exact: hidden degrees stop at C - 1,
        # so none of them reads the last channel of the current step.
        if not self.layer_inputs:  # a step without params() calls (no channel order)
            self.step_features()
        self.input_step.push(self.t, self.x_now)
        for buffer, h in zip(self.block_buffers, self.layer_inputs, strict=True):
            buffer.push(self.t, h)
        self.layer_inputs = []
