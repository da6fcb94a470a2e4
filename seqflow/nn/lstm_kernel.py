"""Compiled pieces of the :class:`~seqflow.nn.lstm.CausalLSTM` stream.

A streaming step of the LSTM is two kinds of work: per layer one gate matmul
``(batch, in + H) @ (in + H, 4H)``, which torch's BLAS does at its full rate (the batch is the
matmul's rows), and everything else: the gate nonlinearities and the cell update, then, per
channel in the autoregressive order, the masked head's hidden layer, the channel's shift and
raw log-scale, the log-scale bound and the affine map of the flow layer. The rest is
elementwise or tiny (``C (3 F)`` multiply-adds per sample for ``F`` head units), so as PyTorch
operations it would cost a dozen dispatches per channel; the two functions below do it in one
call each (`numba <https://numba.pydata.org>`_). :class:`~seqflow.nn.lstm.LSTMStream`
alternates them with ``torch.addmm``; the eager step is the reference they are tested against.

In float32 the nonlinearities use the rational tanh of :mod:`seqflow.nn.wavenet_kernel` (a few
float32 ulps; pure arithmetic, so the loops vectorize); in float64 the math library's.
"""

from __future__ import annotations

import math

from seqflow.nn import wavenet_kernel

njit = wavenet_kernel.njit if wavenet_kernel.available() else None
_tanh_rational = wavenet_kernel._tanh_rational
_log_scale = wavenet_kernel._log_scale


def available() -> bool:
    """Whether numba can be imported (the eager stream runs without)."""
    return njit is not None


def _sigmoid(x, exact):
    if exact:
        return 1.0 / (1.0 + math.exp(-x))
    return 0.5 + 0.5 * _tanh_rational(0.5 * x)


def _tanh(x, exact):
    if exact:
        return math.tanh(x)
    return _tanh_rational(x)


def _cell(gates, c, h, h_copy, exact):
    """One LSTM cell update from its gate pre-activations.

    ``gates`` ``(batch, 4H)`` in torch's order (input, forget, cell, output), bias included;
    ``c`` ``(batch, H)`` the cell state, updated in place; the new hidden state is written to
    ``h`` and ``h_copy`` (both ``(batch, H)``, e.g. the recurrent input of this layer and the
    input of the next).
    """
    batch, width = c.shape
    for b in range(batch):
        for j in range(width):
            i = _sigmoid(gates[b, j], exact)
            f = _sigmoid(gates[b, width + j], exact)
            g = _tanh(gates[b, 2 * width + j], exact)
            o = _sigmoid(gates[b, 3 * width + j], exact)
            cell = f * c[b, j] + i * g
            c[b, j] = cell
            value = o * _tanh(cell, exact)
            h[b, j] = value
            h_copy[b, j] = value


def _head(base, u, out, logdet, step, x, w_channels, w2, b2, order, acc, bound, floor,
          inverse):
    """The masked head and the affine map of every channel of one time step.

    ``base`` ``(batch, F)``: the head's hidden pre-activation from the LSTM state (bias
    included); ``w_channels`` ``(C, F)``: its weights from the current channels (MADE-masked);
    ``w2`` ``(F, 2C)``, ``b2`` ``(2C,)``: shifts, then raw log-scales, by channel index;
    ``order`` ``(C,)``: the channel at each position of the autoregressive order. ``u``
    ``(batch, C, T)`` is the layer's input at column ``step`` (noise when ``inverse``); the
    result goes to ``out`` at that column and to ``x`` ``(batch, C)`` (the next step's LSTM
    input); the log-scales are added to ``logdet`` ``(batch,)``. ``acc`` ``(F,)``: scratch.
    """
    batch, width = base.shape
    channels = order.shape[0]
    for b in range(batch):
        for m in range(width):
            acc[m] = base[b, m]
        for p in range(channels):
            c = order[p]
            shift = b2[c]
            raw = b2[channels + c]
            for m in range(width):
                v = max(acc[m], 0.0)
                shift += v * w2[m, c]
                raw += v * w2[m, channels + c]
            log_scale = _log_scale(raw, bound, floor)
            if inverse:
                y = u[b, c, step] * math.exp(log_scale) + shift
            else:
                y = (u[b, c, step] - shift) * math.exp(-log_scale)
            out[b, c, step] = y
            logdet[b] += log_scale
            x[b, c] = y
            if p < channels - 1:  # the channels after it read this one
                for m in range(width):
                    acc[m] += y * w_channels[c, m]


if njit is not None:
    _sigmoid = njit(_sigmoid, fastmath={"contract"}, cache=True)
    _tanh = njit(_tanh, fastmath={"contract"}, cache=True)
    cell = njit(_cell, fastmath={"contract"}, cache=True)
    head = njit(_head, fastmath={"contract", "reassoc"}, cache=True)
else:  # pragma: no cover - numba is declared
    cell = head = None
