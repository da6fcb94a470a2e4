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

A caller that wants to watch a long stream (a progress bar, a real-time factor) wraps it in
:func:`stream_progress`: the driver then runs the time axis in chunks and reports each one.
The chunks change nothing but when the report comes: every stream state continues across them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ProgressHook:
    """``report(steps)`` after every ``chunk`` time steps of a stream (and after the last)."""

    report: Callable[[int], None]
    chunk: int


_hooks: list[ProgressHook] = []


@contextmanager
def stream_progress(report: Callable[[int], None], chunk: int = 4096) -> Iterator[None]:
    """Inside the block, the sequential driver calls ``report(steps)`` after each ``chunk``
    time steps it has finished (``steps``: those of that chunk), so that a caller can update a
    progress bar while :meth:`~seqflow.distributions.Flow.sample` streams.

    >>> import torch
    >>> from seqflow.transforms import SequenceMAF
    >>> maf = SequenceMAF(1, residual_channels=4, skip_channels=4, blocks=2)
    >>> done = []
    >>> with stream_progress(done.append, chunk=3):
    ...     _ = maf.inverse(torch.randn(1, 1, 8))
    >>> done
    [3, 3, 2]
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"stream_progress: chunk must be a positive int, got {chunk!r}")
    _hooks.append(ProgressHook(report, chunk))
    try:
        yield
    finally:
        _hooks.pop()


def progress_hook() -> ProgressHook | None:
    """The innermost active :func:`stream_progress` hook, or None."""
    return _hooks[-1] if _hooks else None


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
