"""The sequential direction's one protocol, and ring buffers for causal convolutions.

Every autoregressive conditioner (MADE on vectors, WaveNet and CausalLSTM on sequences) offers
``start_stream(batch, context, length, history=None)`` returning a :class:`StreamState`:

* ``order``: the groups (features of a vector, channels of a time step) in autoregressive order;
* ``params(group) -> (batch, P)``: that group's parameters at the current step, computed from
  what has been fed so far (``P = 2``: shift and raw log-scale for an affine layer);
* ``feed(group, value)``: the conditioner-side value ``(batch,)`` of that group;
* ``advance()``: close the current time step (vectors have a single step).

One driver, :func:`seqflow.transforms.autoregressive.sequential`, runs this protocol for single
layers, stacks and primed continuations. A causal convolution with
``lookback = (kernel_size - 1) * dilation`` needs, at time ``t``, its inputs at a few lags
``<= lookback``: :class:`RingBuffer` keeps them, so one new step costs one column of work per
layer. Slots hold tensor references (no in-place writes), so streaming also works under
autograd.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from seqflow.nn.conv import CausalConv1d


class StreamState(Protocol):
    """Incremental evaluation of an autoregressive conditioner (see the module docstring)."""

    order: list[int]

    def params(self, group: int) -> Tensor: ...

    def feed(self, group: int, value: Tensor) -> None: ...

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
