"""Incremental inference for causal sequence models: ring buffers and stream drivers.

A causal convolution with ``lookback = (kernel_size - 1) * dilation`` needs, at time ``t``, its
inputs at ``t - lag`` for a few lags ``<= lookback``. :class:`RingBuffer` keeps the last
``lookback`` inputs, so one new time step costs one column of work per layer instead of a pass
over the receptive field. Slots hold tensor *references* (no in-place writes), so streaming
also works under autograd.

Conditioners that stream (``WaveNet``, ``CausalLSTM``) expose ``start_stream(batch, context,
length, history=None)`` returning a state with

* ``order``: the channel indices in autoregressive order within one time step;
* ``params(c) -> (shift, raw_log_scale)``, each ``(batch,)``, for channel ``c`` at the
  current step;
* ``feed(c, value)``: the conditioner-side value ``(batch,)`` of channel ``c``;
* ``advance()``: close the current time step.

:func:`conditioner_stream` turns such a state into the generator protocol of
:class:`seqflow.transforms.AutoregressiveAffine`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

import torch
from torch import Tensor

from seqflow.nn.conv import CausalConv1d


class StreamState(Protocol):
    order: list[int]

    def params(self, channel: int) -> tuple[Tensor, Tensor]: ...

    def feed(self, channel: int, value: Tensor) -> None: ...

    def advance(self) -> None: ...


class RingBuffer:
    """The last ``length`` values of a ``(batch, channels)`` signal, indexed by absolute time.

    >>> import torch
    >>> buf = RingBuffer(3, torch.zeros(1, 1))
    >>> for t in range(5):
    ...     buf.push(t, torch.full((1, 1), float(t)))
    >>> buf.read(5, lag=2).item(), buf.read(5, lag=3).item()
    (3.0, 2.0)
    """

    def __init__(self, length: int, zero: Tensor):
        self.length = length
        self.slots: list[Tensor] = [zero] * length  # zeros == the causal left padding

    def read(self, t: int, lag: int) -> Tensor:
        """The value pushed at time ``t - lag`` (``1 <= lag <= length``)."""
        return self.slots[(t - lag) % self.length]

    def push(self, t: int, value: Tensor) -> None:
        if self.length:
            self.slots[t % self.length] = value

    def fill(self, history: Tensor) -> None:
        """Load the tail of a ``(batch, channels, time)`` history ending just before time T0."""
        steps = history.shape[-1]
        for tau in range(max(0, steps - self.length), steps):
            self.push(tau, history[:, :, tau])


class CausalConvStepper:
    """Evaluate a :class:`CausalConv1d` one time step at a time with a :class:`RingBuffer`.

    Weights are sliced and masked once at construction, not per step.
    """

    def __init__(self, conv: CausalConv1d, batch: int, zero: Tensor):
        current, self.past = conv.tap_weights()
        skip_current = getattr(conv, "current_tap_is_zero", False)
        self.current = None if skip_current else current
        self.bias = conv.bias
        self.buffer = RingBuffer(conv.lookback, zero.new_zeros(batch, conv.in_channels))

    def __call__(self, t: int, x_now: Tensor, bias: Tensor | None = None) -> Tensor:
        """Output ``(batch, out)`` at time ``t`` given the input ``x_now`` ``(batch, in)``.

        ``bias`` (broadcastable to ``(batch, out)``) replaces the convolution's own bias, so
        callers can fold conditioning terms into it.
        """
        out = self.bias if bias is None else bias
        if self.current is not None:
            out = torch.addmm(out, x_now, self.current)
        for lag, w in self.past:
            out = torch.addmm(out, self.buffer.read(t, lag), w)
        return out

    def push(self, t: int, x_now: Tensor) -> None:
        self.buffer.push(t, x_now)


def conditioner_stream(
    state: StreamState, length: int
) -> Generator[tuple[Any, Tensor, Tensor], Tensor, None]:
    """Drive ``state`` over ``length`` steps with the AutoregressiveAffine generator protocol.

    Yields ``((slice(None), channel, t), shift, raw)`` and receives the value of that element.
    """
    for t in range(length):
        for c in state.order:
            shift, raw = state.params(c)
            value = yield (slice(None), c, t), shift, raw
            state.feed(c, value)
        state.advance()

