"""A source-filter flow layer: the linear-prediction filter of a log-mel, with its gain.

:class:`LinearPrediction` maps mono audio ``x`` ``(batch, 1, time)`` to its excitation at unit
scale,

    forward (normalizing):  e_t = (x_t - sum_k a_{k,t} x_{t-k}) / g_t,
    inverse (generative):   x_t = g_t e_t + sum_k a_{k,t} x_{t-k},

with the per-sample predictor ``a`` and prediction-error standard deviation ``g`` derived from
the log-mel context alone (:class:`~seqflow.data.linear_prediction.MelLinearPrediction`: the
mel's power spectrum, its autocorrelation, Levinson-Durbin; stable by construction). The layer
has no parameters. ``log|det dz/dx| = -sum_t log g_t``: the filter itself is unit lower
triangular.

It is an :class:`~seqflow.transforms.AutoregressiveAffine` whose conditioner reads the data
side (a MAF layer): ``shift_t = sum_k a_{k,t} x_{t-k}``, ``log_scale_t = log g_t`` unbounded.
The forward direction is one pass (``order`` shifted multiply-adds); the inverse is the
synthesis filter, which runs through the one streaming protocol
(:mod:`seqflow.nn.streaming`): its state keeps the last ``order`` outputs and runs whole
sequences in one numba-compiled loop (``order`` multiply-adds per sample; gradients flow
through it by the adjoint, anti-causal filter), so :meth:`Flow.sample`, priming with a history
and chunked progress work as for any MAF layer. Coefficients are computed once per call from
the context, never per step.

Under a network (``Compose([LinearPrediction, SequenceStack of MAF layers])``, a teacher) the
network models the excitation, which reaches it at unit scale; a network whose output layer
starts at zero then scores the mel-derived LPC floor from its first step. After an IAF student
(the same ``Compose`` run in the inverse direction) the student generates the excitation and
the filter adds the envelope and the gain. Either way each step stays Gaussian given the past
(mean shifted by the prediction, scale multiplied by the gain), so the per-step Gaussians of
:mod:`seqflow.transforms.gaussian_steps` and the closed-form KL of density distillation remain
exact (:meth:`LinearPrediction.step_affine`).

References:
    B. S. Atal, S. L. Hanauer, "Speech analysis and synthesis by linear prediction of the
    speech wave", JASA 50(2B), 1971.
    J.-M. Valin, J. Skoglund, "LPCNet: Improving neural speech synthesis through linear
    prediction", ICASSP 2019 (a network that models the excitation of an LPC filter).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.data.features import MelConfig
from seqflow.data.linear_prediction import LinearPredictionConfig, MelLinearPrediction
from seqflow.nn.context import Context, split_context
from seqflow.nn.masks import input_degrees
from seqflow.transforms.autoregressive import AutoregressiveAffine, sequential

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is declared; the plain loop remains
    njit = None


def _synthesize(w, a, step, ring, out):
    """``out[b, t] = w[b, t] + sum_k a[b, t // step, k - 1] * out[b, t - k]``; ``ring``
    ``(batch, p)`` holds the ``p`` outputs before ``t = 0`` (oldest first)."""
    batch, steps = w.shape
    p = a.shape[2]
    for b in range(batch):
        for t in range(steps):
            row = t // step
            acc = w[b, t]
            for k in range(1, p + 1):
                if t >= k:
                    acc += a[b, row, k - 1] * out[b, t - k]
                else:
                    acc += a[b, row, k - 1] * ring[b, p + t - k]
            out[b, t] = acc


def _adjoint(g, a, step, out):
    """The transpose of :func:`_synthesize` (zero history): ``out[b, t] = g[b, t] +
    sum_k a[b, (t + k) // step, k - 1] * out[b, t + k]``, run backwards in time."""
    batch, steps = g.shape
    p = a.shape[2]
    for b in range(batch):
        for t in range(steps - 1, -1, -1):
            acc = g[b, t]
            for k in range(1, p + 1):
                if t + k < steps:
                    acc += a[b, (t + k) // step, k - 1] * out[b, t + k]
            out[b, t] = acc


if njit is not None:
    _synthesize = njit(_synthesize, cache=True, nogil=True)
    _adjoint = njit(_adjoint, cache=True, nogil=True)


class _Synthesis(torch.autograd.Function):
    """``x = A^{-1} w`` (all-pole filter over time, history ``ring``) with the gradient to
    ``w`` by the adjoint filter; the coefficients and the history carry no gradient."""

    @staticmethod
    def forward(ctx, w: Tensor, a: Tensor, step: int, ring: Tensor) -> Tensor:
        w64 = w.detach().double().cpu().numpy()
        a64 = np.ascontiguousarray(a.detach().double().cpu().numpy())
        out = np.empty_like(w64)
        _synthesize(w64, a64, step, np.ascontiguousarray(ring.detach().double().cpu().numpy()),
                    out)
        ctx.save_for_backward(a)
        ctx.step = step
        return torch.from_numpy(out).to(device=w.device, dtype=w.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (a,) = ctx.saved_tensors
        g64 = np.ascontiguousarray(grad.detach().double().cpu().numpy())
        out = np.empty_like(g64)
        _adjoint(g64, np.ascontiguousarray(a.detach().double().cpu().numpy()), ctx.step, out)
        return torch.from_numpy(out).to(device=grad.device, dtype=grad.dtype), None, None, None


def predict(x: Tensor, a: Tensor, step: int, history: Tensor | None = None) -> Tensor:
    """``sum_k a[:, t // step, k - 1] x_{t-k}`` ``(batch, T)`` of ``x`` ``(batch, T)``, with
    ``a`` ``(batch, T // step, p)`` and the ``p`` samples before ``x`` from ``history``
    ``(batch, p)`` (zeros when None). One pass, ``p`` shifted multiply-adds."""
    batch, steps = x.shape
    p = a.shape[-1]
    before = x.new_zeros(batch, p) if history is None else history.to(x)
    padded = torch.cat([before, x], dim=-1)
    frames = steps // step
    out = x.new_zeros(batch, frames, step)
    for k in range(1, p + 1):
        shifted = padded[:, p - k:p - k + steps].reshape(batch, frames, step)
        out = torch.addcmul(out, a[:, :, k - 1:k], shifted)
    return out.reshape(batch, steps)


class MelPredictor(nn.Module):
    """The conditioner of :class:`LinearPrediction`: ``(shift, raw_log_scale)`` of ``y``
    ``(batch, 1, time)`` from a log-mel context ``(batch, n_mels, time // hop_length)`` (a
    tensor or the local features of a :class:`~seqflow.nn.SequenceContext`), with
    ``shift_t = sum_k a_{k,t} y_{t-k}`` and ``raw_log_scale_t = log g_t``.

    :meth:`coefficients` computes the predictor and gains of a whole context once;
    :meth:`start_stream` returns the stream state of the synthesis filter.
    """

    channels = 1

    def __init__(self, mel: MelConfig, config: LinearPredictionConfig | None = None):
        super().__init__()
        self.analysis = MelLinearPrediction(mel, config)
        self.mel = mel
        self.register_buffer("degrees", input_degrees(1, "natural"), persistent=False)

    @property
    def order(self) -> int:
        return self.analysis.order

    def implied_length(self, context: Context) -> int | None:
        local, _ = split_context(context)
        return None if local is None else local.shape[-1] * self.mel.hop_length

    @torch.no_grad()
    def coefficients(self, context: Context, length: int, batch: int,
                     dtype: torch.dtype) -> tuple[Tensor, int, Tensor]:
        """``(a, step, log_gain)`` for ``length`` samples: predictors ``(batch, length // step,
        p)`` shared by ``step`` consecutive samples (``hop_length`` when held per frame, 1
        when interpolated) and log gains ``(batch, length)``, in ``dtype``."""
        local, _ = split_context(context)
        name = "LinearPrediction"
        if local is None:
            raise ValueError(f"{name}: needs the log-mel as context (batch, {self.mel.n_mels}, "
                             "frames); got none")
        hop = self.mel.hop_length
        if local.dim() != 3 or local.shape[0] != batch or local.shape[1] != self.mel.n_mels:
            raise ValueError(f"{name}: expected a log-mel context (batch={batch}, "
                             f"{self.mel.n_mels}, frames), got {tuple(local.shape)}")
        if local.shape[-1] * hop != length:
            raise ValueError(f"{name}: {length} samples but the context has {local.shape[-1]} "
                             f"frames of hop_length={hop} ({local.shape[-1] * hop} samples); "
                             "give a log-mel of exactly length / hop_length frames")
        _, k, log_error = self.analysis(local)
        a, log_gain = self.analysis.per_sample(k, log_error)
        if self.analysis.config.interpolation == "reflection":
            step, a = 1, a.transpose(1, 2)
        else:  # held per frame: keep one row per frame
            step, a = hop, a[:, :, ::hop].transpose(1, 2)
        return a.to(dtype).contiguous(), step, log_gain.to(dtype)

    def forward(self, y: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        a, step, log_gain = self.coefficients(context, y.shape[-1], y.shape[0], y.dtype)
        return predict(y[:, 0], a, step).unsqueeze(1), log_gain.unsqueeze(1)

    def start_stream(self, batch: int, context: Context, length: int,
                     history: Tensor | None = None) -> PredictorStream:
        before = 0 if history is None else history.shape[-1]
        a, step, log_gain = self.coefficients(context, before + length, batch, torch.float64)
        return PredictorStream(a, step, log_gain, self.order, history)


class PredictorStream:
    """Stream state of :class:`MelPredictor` (:mod:`seqflow.nn.streaming`): the last ``p``
    outputs, the coefficients of the whole context, and the current step.

    ``params``/``feed``/``advance`` step one sample; :meth:`run_sequence` runs many in one
    compiled loop (with gradients, through the adjoint filter), continuing the same state.
    """

    order = [0]
    runs_sequences = True
    runs_floored = True

    def __init__(self, a: Tensor, step: int, log_gain: Tensor, p: int,
                 history: Tensor | None):
        self.a, self.step, self.log_gain, self.p = a, step, log_gain, p
        batch = log_gain.shape[0]
        self.t = 0 if history is None else history.shape[-1]
        self.ring = log_gain.new_zeros(batch, p)  # the last p outputs, oldest first
        if history is not None:
            tail = history[:, 0, -p:].double()
            self.ring[:, p - tail.shape[-1]:] = tail
        self.fed: Tensor | None = None

    def params(self, group: int) -> Tensor:
        row = self.a[:, self.t // self.step]
        shift = (row * self.ring.flip(-1)).sum(-1)
        return torch.stack([shift, self.log_gain[:, self.t]], dim=1)

    def feed(self, group: int, value: Tensor) -> None:
        self.fed = value

    def advance(self) -> None:
        self.ring = torch.cat([self.ring[:, 1:], self.fed.reshape(-1, 1).to(self.ring)], dim=1)
        self.t += 1

    def run_sequence(self, u: Tensor, bound: float, inverse: bool,
                     floor: float | None = None) -> tuple[Tensor, Tensor]:
        """Steps ``t .. t + T - 1`` of ``u`` ``(batch, 1, T)``: the synthesis filter when
        ``inverse`` (``u`` the excitation), else the analysis filter. Returns the result and
        the summed log gains ``(batch,)``; the log-scale is the gain itself (``bound`` and
        ``floor`` do not apply to it)."""
        steps, start = u.shape[-1], self.t
        log_gain = self.log_gain[:, start:start + steps].to(u)
        if start % self.step == 0 and steps % self.step == 0:
            rows, step = self.a[:, start // self.step:(start + steps) // self.step], self.step
        else:  # a chunk that cuts a frame: one row per sample
            rows = self.a.repeat_interleave(self.step, dim=1)[:, start:start + steps]
            step = 1
        if inverse:
            x = _Synthesis.apply(u[:, 0] * log_gain.exp(), rows.contiguous(), step, self.ring)
            out = x
        else:
            x = u[:, 0]
            out = (x - predict(x, rows.to(u), step, self.ring)) * torch.exp(-log_gain)
        self.ring = torch.cat([self.ring, x.detach().double()], dim=-1)[:, -self.p:]
        self.t += steps
        return out.unsqueeze(1), log_gain.sum(-1)


class LinearPrediction(AutoregressiveAffine):
    """The linear-prediction filter of a log-mel as a flow layer (see the module docstring).

    Args:
        mel: the :class:`~seqflow.data.features.MelConfig` of the log-mel context (the same
            filterbank, window and hop as :class:`~seqflow.data.features.LogMel`).
        config: order, interpolation and analysis settings
            (:class:`~seqflow.data.linear_prediction.LinearPredictionConfig`).

    ``forward(x, context)`` ``(batch, 1, frames * hop_length)`` -> excitation at unit scale and
    ``-sum log g``; ``inverse`` is the synthesis filter. The context is the log-mel ``(batch,
    n_mels, frames)`` at the frame rate (a tensor or a :class:`~seqflow.nn.SequenceContext`):
    put the layer outside a :class:`~seqflow.transforms.SequenceStack`, whose upsampler
    changes the features it hands its own layers.

    >>> from seqflow.data.features import LogMel
    >>> layer = LinearPrediction(MelConfig(), LinearPredictionConfig(order=8))
    >>> x = 0.1 * torch.randn(2, 1, 4096)
    >>> mel = LogMel(MelConfig())(x)
    >>> e, logdet = layer(x, mel)
    >>> back, _ = layer.inverse(e, mel)
    >>> bool(torch.allclose(back, x, atol=1e-5))
    True
    """

    def __init__(self, mel: MelConfig, config: LinearPredictionConfig | None = None):
        super().__init__(MelPredictor(mel, config), 1, "data", log_scale_bound=math.inf,
                         sequence=True)

    @property
    def order(self) -> int:
        return self.conditioner.order

    def bound_log_scale(self, raw: Tensor) -> Tensor:
        """The log gain itself: a gain derived from the context is not bounded."""
        return raw

    def implied_length(self, context: Context) -> int | None:
        return self.conditioner.implied_length(context)

    def check_step_affine(self, inverse: bool) -> None:
        return None

    def step_affine(self, u: Tensor, context: Context, inverse: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward: ``e = x exp(-log g) - pred(x_<t) exp(-log g)``. Inverse: ``x`` from the
        synthesis filter, then ``x = e exp(log g) + pred(x_<t)`` with the prediction read from
        the output's past, which is a function of ``u_<t``: still one affine map per step
        whose coefficients depend only on earlier elements."""
        self.validate(u, context, "per-step Gaussian")
        if not inverse:
            shift, log_scale = self.params(u, context)
            shift, log_scale = -shift * torch.exp(-log_scale), -log_scale
            return torch.addcmul(shift, u, torch.exp(log_scale)), shift, log_scale
        batch, _, steps = u.shape
        a, step, log_gain = self.conditioner.coefficients(context, steps, batch, u.dtype)
        x = _Synthesis.apply(u[:, 0] * log_gain.exp(), a, step,
                             u.new_zeros(batch, self.order, dtype=torch.float64))
        shift, log_scale = predict(x, a, step).unsqueeze(1), log_gain.unsqueeze(1)
        return torch.addcmul(shift, u, torch.exp(log_scale)), shift, log_scale

    def inverse_after(self, z: Tensor, context: Context = None, history: Tensor | None = None
                      ) -> tuple[Tensor, Tensor]:
        """Noise -> data after a data ``history`` ``(batch, 1, T0)``: the synthesis filter
        continues from the history's last ``order`` samples (the context covers both)."""
        if history is None:
            return self.inverse(z, context)
        return sequential([self], z, context, history)

    def history_image(self, history: Tensor, context: Context, length: int) -> Tensor:
        """The excitation of a data ``history`` ``(batch, 1, T0)`` that ``length`` more steps
        follow (the context covers ``T0 + length``), by the analysis filter."""
        steps = history.shape[-1]
        padded = F.pad(history, (0, length))
        return self(padded, context)[0][..., :steps]
