"""A WaveNet stream for large batches: matmuls over the batch, one MADE degree block at a time.

With ``C`` channels the eager step (:class:`~seqflow.nn.wavenet.WaveNetStream`) recomputes
the whole column once per channel, ``C`` columns per time step. A column has one MADE degree
per channel position: the parameters of the channel at position ``p`` of the order read only
units of degree ``<= p``, and the units of degree ``p`` read only inputs of degree ``<= p``.
:class:`DegreeBlocks` therefore completes, for position ``p``, just the units of degree ``p``
of every layer (one column per time step in all), each layer's work a ``torch.addmm`` whose
rows are the batch, so BLAS does the arithmetic. The products are *right-looking*: once the
units of degree ``p`` of a layer are known, their contribution to every unit of degree
``>= p`` of the next layer is added at once (masked weights below that are zero), so every
operand is a contiguous slice:

* units are sorted by degree; a block's gate columns are ordered by degree, each degree's tanh
  half, then its sigmoid half;
* ``sigmoid(b) = (1 + tanh(b / 2)) / 2``: the sigmoid half is pre-scaled by 1/2, one ``tanh_``
  covers both halves, and ``2 z = tanh(a) (1 + tanh(b / 2))`` is one ``addcmul``; the factor
  1/2 sits in the residual and skip weights that read ``z``;
* the gates of every block are stored degree-major, so one matmul adds a degree's gates of
  all blocks to the skip units.

The ring of past block inputs stays the stream's own (:class:`~seqflow.nn.wavenet.PackedBlocks`
layout, units in their original order): the past taps of every block are one gather and one
batched matmul per step, as in the eager step, and the new inputs are written back the same
way. Without gradient recording only (the buffers are updated in place).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _ends(degrees: Tensor, channels: int) -> list[int]:
    """``ends[p]``: units of degree ``< p`` (degrees sorted), for ``p = 0 .. C``."""
    return [int((degrees < p).sum()) for p in range(channels + 1)]


class DegreeBlocks:
    """The weights of a :class:`~seqflow.nn.wavenet.WaveNet` stream in degree-block layouts and
    the buffers of one batch; :meth:`run` advances the stream (see the module docstring).

    ``pack``: the stream's :class:`~seqflow.nn.wavenet.PackedBlocks`; ``input_step``: its
    input-convolution stepper. Buffers hold units in rows and the batch in columns
    (``(units, batch)``), so a degree block is a contiguous slab and every product is
    ``W[units >= p, units of degree p] @ values[units of degree p, batch]``.
    """

    def __init__(self, net, pack, input_step, batch: int, like: Tensor):
        order = net.degrees.argsort()
        channels, r, blocks = len(order), pack.r, pack.blocks
        deg = net.blocks[0].conv.in_degrees
        skip_deg = net.head_hidden.in_degrees
        head_deg = net.head_hidden.out_degrees
        pr, ps, ph = (d.argsort(stable=True) for d in (deg, skip_deg, head_deg))
        re, se, he = (_ends(d, channels) for d in (deg, skip_deg, head_deg))
        self.order = order.tolist()
        self.channels, self.blocks = channels, blocks
        # Gate columns: for each degree p, its tanh units, then its sigmoid units.
        gates = torch.cat([torch.cat([pr[re[p]:re[p + 1]], r + pr[re[p]:re[p + 1]]])
                           for p in range(channels)]).to(like.device)
        half = torch.ones(2 * r, dtype=like.dtype, device=like.device)
        for p in range(channels):
            half[re[p] + re[p + 1]:2 * re[p + 1]] = 0.5  # the sigmoid half of degree p
        self.gates, self.half = gates, half
        self.past = (pack.past[..., gates] * half).transpose(1, 2).contiguous()  # (L, 2R, KR)
        # The ring holds h_i = g_i + offset_i (see PackedBlocks): the gate bias keeps only the
        # offset's current-tap term, and the offsets are added back when the ring is written.
        past_sum = pack.past.view(blocks, -1, r, 2 * r).sum(1)  # (L, R, 2R)
        self.bias_shift = torch.bmm(pack.offsets.unsqueeze(1), past_sum)  # (L, 1, 2R)
        self.offsets = pack.offsets[:, pr].unsqueeze(2)  # (L, R, 1), units sorted
        current = [(w[pr][:, gates] * half).t() for w in pack.current]  # (2R, R) each
        residual = [0.5 * w[pr][:, pr].t() for w in pack.residual]  # (R, R): 2z -> h
        # Skip inputs in the degree-major order of the gate buffer: (degree, block, unit).
        skip = pack.skip_weight.view(blocks, r, -1)[:, pr][..., ps]  # (L, R sorted, S sorted)
        skip = 0.5 * torch.cat([skip[:, re[p]:re[p + 1]].reshape(-1, skip.shape[-1])
                                for p in range(channels)]).t()  # (S, L R)
        w1, b1, w2, b2 = pack.head
        w1 = w1[ps][:, ph].t()  # (F, S)
        current_in, _ = net.input_conv.tap_weights()  # (C, R)
        self.in_past = [(lag, w[:, pr].t()) for lag, w in input_step.past]  # (R, C) each
        self.in_bias = input_step.bias[pr].unsqueeze(1)
        self.skip_bias = pack.skip_bias[ps].unsqueeze(1)
        self.b1 = b1[ph].unsqueeze(1)
        self.unsort = pr.argsort().to(like.device)
        # Buffers and the views every step reuses.
        self.h = h = like.new_empty(blocks, r, batch)
        self.a = a = like.new_empty(blocks, 2 * r, batch)
        self.z = z = like.new_empty(blocks * r, batch)
        self.s = s = like.new_empty(skip.shape[0], batch)
        self.hidden = hidden = like.new_empty(w1.shape[0], batch)
        s_relu, hidden_relu = torch.empty_like(s), torch.empty_like(hidden)
        self.x = like.new_empty(batch, channels)
        self.plan = []
        for p, c in enumerate(self.order):
            lo, hi, n = re[p], re[p + 1], re[p + 1] - re[p]
            layers = []
            for i in range(n and blocks):
                zp = z[blocks * lo + i * n:blocks * lo + (i + 1) * n]
                res = None
                if i < blocks - 1:
                    res = (h[i + 1, lo:], residual[i][lo:, lo:hi], h[i + 1, lo:hi])
                layers.append((h[i, lo:hi], a[i, 2 * lo:], current[i][2 * lo:, lo:hi],
                               a[i, 2 * lo:2 * hi], a[i, 2 * lo:lo + hi], a[i, lo + hi:2 * hi],
                               zp, res))
            skip_step = (s[se[p]:], skip[se[p]:, blocks * lo:blocks * hi],
                         z[blocks * lo:blocks * hi]) if n else None
            head_step = ((s[se[p]:se[p + 1]], s_relu[se[p]:se[p + 1]], hidden[he[p]:],
                          w1[he[p]:, se[p]:se[p + 1]]) if se[p + 1] > se[p] else None)
            relu_step = ((hidden[he[p]:he[p + 1]], hidden_relu[he[p]:he[p + 1]])
                         if he[p + 1] > he[p] else None)
            pair = [c, channels + c]  # the channel's shift and raw log-scale
            out_step = (b2[pair].unsqueeze(1), w2[ph][:he[p + 1], pair].t(),
                        hidden_relu[:he[p + 1]])
            feed = None
            if p < channels - 1 and re[channels] > re[p + 1]:
                feed = (h[0, re[p + 1]:], current_in[c][pr][re[p + 1]:].unsqueeze(1))
            self.plan.append((c, layers, skip_step, head_step, relu_step, out_step, feed))

    def run(self, stream, u: Tensor, bound: float, inverse: bool,
            floor: float | None) -> tuple[Tensor, Tensor]:
        """``u`` ``(batch, C, T)`` -> result and summed log-scales; advances ``stream``."""
        pack, ring = stream.pack, stream.ring
        blocks, h, a, x = self.blocks, self.h, self.a, self.x
        out = torch.empty_like(u)
        logdet = u.new_zeros(u.shape[0])
        bias_const = None
        if stream.cond is None:
            bias_const = self._bias(stream.bias)
        for step in range(u.shape[-1]):
            t = stream.t
            bias = bias_const
            if bias is None:
                bias = self._bias(stream._bias_at(t))
            reads = ring.index_select(0, pack.read_rows[t % pack.period])  # (L (K-1), B, R)
            reads = reads.unflatten(0, (blocks, -1)).permute(0, 1, 3, 2).flatten(1, 2)
            torch.baddbmm(bias, self.past, reads, out=a)
            h0 = h[0]
            h0.copy_(self.in_bias)
            for lag, w in self.in_past:
                h0.addmm_(w, stream.input_step.buffer.read(t, lag).t())
            h[1:].zero_()
            self.s.copy_(self.skip_bias)
            self.hidden.copy_(self.b1)
            for c, layers, skip_step, head_step, relu_step, out_step, feed in self.plan:
                for hp, ai, wc, gp, tp, sp, zp, res in layers:
                    ai.addmm_(wc, hp)
                    gp.tanh_()
                    torch.addcmul(tp, tp, sp, out=zp)  # 2 z
                    if res is not None:
                        res[0].addmm_(res[1], zp)
                        res[2].add_(hp)
                if skip_step is not None:
                    skip_step[0].addmm_(skip_step[1], skip_step[2])
                if head_step is not None:
                    relu = torch.clamp_min(head_step[0], 0.0, out=head_step[1])
                    head_step[2].addmm_(head_step[3], relu)
                if relu_step is not None:
                    torch.clamp_min(relu_step[0], 0.0, out=relu_step[1])
                params = torch.addmm(*out_step)  # (2, batch): shift, raw log-scale
                y, log_scale = _affine(u[:, c, step], params[0], params[1], bound, floor,
                                       inverse)
                out[:, c, step] = y
                x[:, c] = y
                logdet.add_(log_scale)
                if feed is not None:
                    feed[0].addmm_(feed[1], y.unsqueeze(0))
            stream.input_step.push(t, x.clone())
            pack.push(ring, t, (h + self.offsets)[:, self.unsort].transpose(1, 2),
                      in_place=True)
            stream.t += 1
        return out, logdet

    def _bias(self, bias: Tensor) -> Tensor:
        """The stream's gate bias ``(L, batch or 1, 2R)`` in this layout ``(L, 2R, batch or 1)``."""
        return ((bias - self.bias_shift)[..., self.gates] * self.half).transpose(1, 2)


def _affine(u: Tensor, shift: Tensor, raw: Tensor, bound: float, floor: float | None,
            inverse: bool) -> tuple[Tensor, Tensor]:
    """The affine map of a flow layer with the bounded log-scale (see
    :func:`seqflow.transforms.elementwise.bound_log_scale`); returns the result and log-scale."""
    if floor is None:
        log_scale = raw / raw.abs().div_(bound).add_(1.0)
    else:
        upper = F.softplus(bound - raw).neg_().add_(bound)
        log_scale = F.softplus(upper.sub_(floor)).add_(floor)
    if inverse:
        return torch.addcmul(shift, u, log_scale.exp()), log_scale
    return (u - shift).mul_(log_scale.neg().exp_()), log_scale
