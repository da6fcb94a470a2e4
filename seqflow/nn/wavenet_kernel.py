"""A compiled single-channel WaveNet stream: many time steps of one layer per call.

The eager stream (:class:`~seqflow.nn.wavenet.WaveNetStream`) runs one column of a WaveNet as
a few dozen PyTorch operations per step; at small batches their dispatch, not the arithmetic,
is the cost. For one channel (``C = 1``, mono audio) this module runs the same computation as
one numba-compiled loop over time steps (`numba <https://numba.pydata.org>`_, a declared
dependency): per step it reads the ring of past block inputs, evaluates every block, the skips
and the head, applies the affine map of the flow layer, and writes the ring back. It is
used without gradient recording, on CPU, in float32 or float64 (see
:data:`seqflow.nn.wavenet.STEP_MODES`); the eager stream is the reference it is tested against.

Array layouts follow :class:`~seqflow.nn.wavenet.PackedBlocks`: ``ring`` ``(rows, batch, R)``,
``read_rows`` ``(period, L, K - 1)``, ``write_rows`` ``(period, L)``, ``bias``
``(steps or 1, L, batch or 1, 2R)``, ``past`` ``(L, K - 1, R, 2R)``, ``current`` ``(L, R, 2R)``,
``residual`` ``(L, R, R)`` (the last block's is unused), ``skip`` ``(L, R, S)``, input
convolution taps ``in_past`` ``(K - 1, R)`` (the current tap of a single channel is masked to
zero), head ``w1`` ``(S, H)``, ``w2`` ``(H, 2)``.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is declared; without it eager streaming remains
    njit = None


def available() -> bool:
    """Whether numba can be imported (declared in pyproject.toml; the eager stream runs without)."""
    return njit is not None


def _softplus(x):
    """``log(1 + exp(x))`` without overflow, as torch's softplus (linear above 20)."""
    if x > 20.0:
        return x
    return math.log1p(math.exp(x))


def _run(u, out, logdet, t0, ring, x_ring, read_rows, write_rows, bias, past, current,
         residual, skip_w, skip_b, in_past, in_b, w1, b1, w2, b2, bound, floor, inverse):
    """Steps ``t0 .. t0 + T - 1`` of one single-channel layer; see the module docstring.

    ``u`` ``(batch, T)`` is the layer's input (noise when ``inverse``, data otherwise); the
    result goes to ``out`` and the summed log-scales are added to ``logdet`` ``(batch,)``.
    ``x_ring`` ``(K - 1, batch)`` holds the layer's last ``K - 1`` results (slot ``t % (K-1)``).
    """
    batch, steps = u.shape
    blocks, taps, r, r2 = past.shape
    s_width = skip_b.shape[0]
    h_width = b1.shape[0]
    period = read_rows.shape[0]
    dtype = u.dtype
    a = np.empty(r2, dtype=dtype)
    h = np.empty(r, dtype=dtype)
    g = np.empty(r, dtype=dtype)
    inputs = np.empty((blocks, r), dtype=dtype)
    skip = np.empty(s_width, dtype=dtype)
    hidden = np.empty(h_width, dtype=dtype)
    for step in range(steps):
        t = t0 + step
        k = t % period
        ti = step if bias.shape[0] > 1 else 0
        for b in range(batch):
            bi = b if bias.shape[2] > 1 else 0
            for j in range(r):
                h[j] = in_b[j]
            for lag in range(1, taps + 1):
                x = x_ring[(t - lag) % taps, b]
                for j in range(r):
                    h[j] += x * in_past[lag - 1, j]
            for j in range(s_width):
                skip[j] = skip_b[j]
            for i in range(blocks):
                for j in range(r2):
                    a[j] = bias[ti, i, bi, j]
                for tap in range(taps):
                    row = read_rows[k, i, tap]
                    for m in range(r):
                        v = ring[row, b, m]
                        for j in range(r2):
                            a[j] += v * past[i, tap, m, j]
                for m in range(r):
                    hm = h[m]
                    inputs[i, m] = hm
                    for j in range(r2):
                        a[j] += hm * current[i, m, j]
                for j in range(r):
                    g[j] = math.tanh(a[j]) / (1.0 + math.exp(-a[r + j]))
                for m in range(r):
                    gm = g[m]
                    for j in range(s_width):
                        skip[j] += gm * skip_w[i, m, j]
                if i < blocks - 1:
                    for m in range(r):
                        gm = g[m]
                        for j in range(r):
                            h[j] += gm * residual[i, m, j]
            for j in range(h_width):
                hidden[j] = b1[j]
            for m in range(s_width):
                sm = max(skip[m], 0.0)
                for j in range(h_width):
                    hidden[j] += sm * w1[m, j]
            shift = b2[0]
            raw = b2[1]
            for m in range(h_width):
                hm = max(hidden[m], 0.0)
                shift += hm * w2[m, 0]
                raw += hm * w2[m, 1]
            if floor < 0.0:  # floored_log_scale(raw, floor, bound)
                upper = bound - _softplus(bound - raw)
                log_scale = floor + _softplus(upper - floor)
            else:  # soft_clamp(raw, bound)
                log_scale = raw / (1.0 + abs(raw) / bound)
            if inverse:
                y = u[b, step] * math.exp(log_scale) + shift
            else:
                y = (u[b, step] - shift) * math.exp(-log_scale)
            out[b, step] = y
            logdet[b] += log_scale
            x_ring[t % taps, b] = y
            for i in range(blocks):
                row = write_rows[k, i]
                for m in range(r):
                    ring[row, b, m] = inputs[i, m]


# Contracted multiply-adds and reassociated sums (vectorized loops); no assumptions about
# NaN or infinity, and exact tanh / exp.
_softplus = njit(_softplus, cache=True) if njit is not None else _softplus
run = njit(_run, fastmath={"contract", "reassoc"}, cache=True) if njit is not None else None
