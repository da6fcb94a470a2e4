"""Compiled WaveNet streams: many time steps of one layer per call.

The eager stream (:class:`~seqflow.nn.wavenet.WaveNetStream`) runs one column of a WaveNet as
a few dozen PyTorch operations per step, and with ``C`` channels one column per channel; at
small and moderate batches their dispatch, not the arithmetic, is the cost. This module runs
the same computation as numba-compiled loops over time steps
(`numba <https://numba.pydata.org>`_, a declared dependency): per step they read the ring of
past block inputs, evaluate every block, the skips and the head, apply the affine map of the
flow layer, and write the ring back. They are used without gradient recording, on CPU, in
float32 or float64 (see :data:`seqflow.nn.wavenet.STEP_MODES`); the eager stream is the
reference they are tested against.

* :func:`run`: one channel (``C = 1``, mono audio), one sample at a time (small batches).
  Array layouts follow :class:`~seqflow.nn.wavenet.PackedBlocks`: ``ring``
  ``(rows, batch, R)``, ``read_rows`` ``(period, L, K - 1)``, ``write_rows`` ``(period, L)``,
  ``bias`` ``(steps or 1, L, batch or 1, 2R)``, ``past`` ``(L, K - 1, R, 2R)``, ``current``
  ``(L, R, 2R)``, ``residual`` ``(L, R, R)`` (the last block's is unused), ``skip``
  ``(L, R, S)``, input convolution taps ``in_past`` ``(K - 1, R)`` (the current tap of a single
  channel is masked to zero), head ``w1`` ``(S, H)``, ``w2`` ``(H, 2)``.
* :func:`run_channels`: any ``C``, the batch in the innermost loops (vectorized), in tiles of
  samples. Hidden, skip and head units are sorted by MADE degree, so for the channel at
  position ``p`` of the order only the units of degree ``p`` are computed, each from the
  prefix of units of degree ``<= p`` (the masked weights are zero elsewhere): a time step
  costs one column in all, not one per channel. Layouts (built by
  :meth:`~seqflow.nn.wavenet.PackedBlocks.channel_kernel_arrays`): ``ring``
  ``(tiles, rows, R, tile)``, ``x_ring`` ``(K - 1, C, batch)``, ``bias``
  ``(steps or 1, L, 2R, batch or 1)``, ``in_past`` ``(K - 1, C, R)``, ``in_cur`` ``(C, R)``,
  ``w2`` ``(H, 2C)`` and ``b2`` ``(2C,)`` (shifts, then raw log-scales, channels in the
  order), ``order`` ``(C,)`` (the channel at each position), ``r_end``, ``s_end``, ``h_end``
  ``(C,)`` (how many residual, skip and head units have degree ``<= p``); the others as above.
  In float32 the gates use a rational tanh (:data:`TANH_CLIP`), which the compiler
  vectorizes; in float64 the math library's.
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


def _log_scale(raw, bound, floor):
    """The bounded log-scale of the output heads, as
    :func:`seqflow.transforms.elementwise.bound_log_scale`: the floored form when ``floor < 0``,
    else the soft clamp to ``(-bound, bound)``."""
    if floor < 0.0:
        upper = bound - _softplus(bound - raw)
        return floor + _softplus(upper - floor)
    return raw / (1.0 + abs(raw) / bound)


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
            log_scale = _log_scale(raw, bound, floor)
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
_log_scale = njit(_log_scale, cache=True) if njit is not None else _log_scale
run = njit(_run, fastmath={"contract", "reassoc"}, cache=True) if njit is not None else None


# --- any channel count, batch in the innermost loops -------------------------------------------
# Odd numerator (x, x^3, ..., x^13) and even denominator (1, x^2, ..., x^6) of a rational
# approximation of tanh on [-TANH_CLIP, TANH_CLIP]; beyond it tanh is +-1 in float32. Its error
# is a few float32 ulps (tested against math.tanh), and it is pure arithmetic, so the compiler
# vectorizes it over the batch, which calls to the math library would prevent.
TANH_CLIP = 7.99881172180175781
_TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
           5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
           -2.76076847742355e-16)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
           1.19825839466702e-06)


def _tanh_rational(x):
    """tanh(x) by the rational approximation above (float32 accuracy)."""
    x = min(max(x, -TANH_CLIP), TANH_CLIP)
    x2 = x * x
    p = x2 * _TANH_P[6] + _TANH_P[5]
    p = x2 * p + _TANH_P[4]
    p = x2 * p + _TANH_P[3]
    p = x2 * p + _TANH_P[2]
    p = x2 * p + _TANH_P[1]
    p = x * (x2 * p + _TANH_P[0])
    q = x2 * _TANH_Q[3] + _TANH_Q[2]
    q = x2 * q + _TANH_Q[1]
    q = x2 * q + _TANH_Q[0]
    return p / q


def _gate(a, b, exact):
    """``tanh(a) * sigmoid(b)``; sigmoid(b) = (1 + tanh(b / 2)) / 2."""
    if exact:
        return math.tanh(a) / (1.0 + math.exp(-b))
    return _tanh_rational(a) * (0.5 + 0.5 * _tanh_rational(0.5 * b))


def _run_channels(u, out, logdet, t0, ring, x_ring, read_rows, write_rows, bias, past,
                  current, residual, skip_w, skip_b, in_past, in_cur, in_b, w1, b1, w2, b2,
                  order, r_end, s_end, h_end, bound, floor, inverse, exact):
    """Steps ``t0 .. t0 + T - 1`` of one layer on ``C`` channels; see :func:`run_channels`."""
    batch, channels, steps = u.shape
    blocks, taps, r, r2 = past.shape
    s_width = skip_b.shape[0]
    h_width = b1.shape[0]
    period = read_rows.shape[0]
    dtype = u.dtype
    width = ring.shape[3]
    hs = np.empty((blocks, r, width), dtype=dtype)  # block inputs
    gs = np.empty((blocks, r, width), dtype=dtype)  # gates
    skip = np.empty((s_width, width), dtype=dtype)  # relu of the summed skips
    hidden = np.empty((h_width, width), dtype=dtype)  # relu of the head's hidden layer
    at = np.empty(width, dtype=dtype)
    as_ = np.empty(width, dtype=dtype)
    xs = np.empty((channels, width), dtype=dtype)  # this step's values, in the channel order
    for b0 in range(0, batch, width):
        nb = min(width, batch - b0)
        tile_index = b0 // width
        for step in range(steps):
            t = t0 + step
            k = t % period
            ti = step if bias.shape[0] > 1 else 0
            for p in range(channels):
                lo = r_end[p - 1] if p > 0 else 0
                hi = r_end[p]
                for j in range(lo, hi):  # input convolution, units of degree p
                    for bb in range(nb):
                        hs[0, j, bb] = in_b[j]
                    for lag in range(1, taps + 1):
                        row = (t - lag) % taps
                        for q in range(channels):
                            w = in_past[lag - 1, q, j]
                            for bb in range(nb):
                                hs[0, j, bb] += w * x_ring[row, q, b0 + bb]
                    for q in range(p):
                        w = in_cur[q, j]
                        for bb in range(nb):
                            hs[0, j, bb] += w * xs[q, bb]
                for i in range(blocks):
                    for j in range(lo, hi):
                        if bias.shape[3] > 1:
                            for bb in range(nb):
                                at[bb] = bias[ti, i, j, b0 + bb]
                                as_[bb] = bias[ti, i, r + j, b0 + bb]
                        else:
                            for bb in range(nb):
                                at[bb] = bias[ti, i, j, 0]
                                as_[bb] = bias[ti, i, r + j, 0]
                        for tap in range(taps):
                            row = read_rows[k, i, tap]
                            for m in range(r):
                                wt = past[i, tap, m, j]
                                ws = past[i, tap, m, r + j]
                                for bb in range(nb):
                                    v = ring[tile_index, row, m, bb]
                                    at[bb] += wt * v
                                    as_[bb] += ws * v
                        for m in range(hi):
                            wt = current[i, m, j]
                            ws = current[i, m, r + j]
                            for bb in range(nb):
                                v = hs[i, m, bb]
                                at[bb] += wt * v
                                as_[bb] += ws * v
                        for bb in range(nb):
                            gs[i, j, bb] = _gate(at[bb], as_[bb], exact)
                    if i < blocks - 1:
                        for j in range(lo, hi):
                            for bb in range(nb):
                                hs[i + 1, j, bb] = hs[i, j, bb]
                            for m in range(hi):
                                w = residual[i, m, j]
                                for bb in range(nb):
                                    hs[i + 1, j, bb] += w * gs[i, m, bb]
                for j in range(s_end[p - 1] if p > 0 else 0, s_end[p]):
                    for bb in range(nb):
                        at[bb] = skip_b[j]
                    for i in range(blocks):
                        for m in range(hi):
                            w = skip_w[i, m, j]
                            for bb in range(nb):
                                at[bb] += w * gs[i, m, bb]
                    for bb in range(nb):
                        skip[j, bb] = max(at[bb], 0.0)
                for j in range(h_end[p - 1] if p > 0 else 0, h_end[p]):
                    for bb in range(nb):
                        at[bb] = b1[j]
                    for m in range(s_end[p]):
                        w = w1[m, j]
                        for bb in range(nb):
                            at[bb] += w * skip[m, bb]
                    for bb in range(nb):
                        hidden[j, bb] = max(at[bb], 0.0)
                for bb in range(nb):
                    at[bb] = b2[p]
                    as_[bb] = b2[channels + p]
                for m in range(h_end[p]):
                    ws = w2[m, p]
                    wr = w2[m, channels + p]
                    for bb in range(nb):
                        at[bb] += ws * hidden[m, bb]
                        as_[bb] += wr * hidden[m, bb]
                c = order[p]
                for bb in range(nb):
                    raw = as_[bb]
                    log_scale = _log_scale(raw, bound, floor)
                    if inverse:
                        y = u[b0 + bb, c, step] * math.exp(log_scale) + at[bb]
                    else:
                        y = (u[b0 + bb, c, step] - at[bb]) * math.exp(-log_scale)
                    out[b0 + bb, c, step] = y
                    logdet[b0 + bb] += log_scale
                    xs[p, bb] = y
            for q in range(channels):
                for bb in range(nb):
                    x_ring[t % taps, q, b0 + bb] = xs[q, bb]
            for i in range(blocks):
                row = write_rows[k, i]
                for m in range(r):
                    for bb in range(nb):
                        ring[tile_index, row, m, bb] = hs[i, m, bb]


_tanh_rational = njit(_tanh_rational, fastmath={"contract"}, cache=True) if njit else _tanh_rational
_gate = njit(_gate, fastmath={"contract"}, cache=True) if njit is not None else _gate
run_channels = (njit(_run_channels, fastmath={"contract", "reassoc"}, cache=True)
                if njit is not None else None)
