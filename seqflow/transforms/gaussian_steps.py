"""The per-step Gaussian of a flow made of affine layers, in one pass (density distillation).

Every layer considered here is, at one element, an affine map of its input ``u`` whose
coefficients depend only on *earlier* elements:

    out = u * exp(l) + c,

with ``(c, l)`` constant for :class:`~seqflow.transforms.Scaling` and
:class:`~seqflow.transforms.ActNorm`, and read by a conditioner from earlier elements for an
:class:`~seqflow.transforms.AutoregressiveAffine` (MAF, IAF, sequence MAF/IAF). A chain of such
maps is again affine in the chain's input at that element: after the layers,

    out_t = in_t * exp(L_t) + C_t,   L_t = sum_k l_k,t,   C_t = sum_k c_k,t prod_{j>k} exp(l_j,t),

and ``(L_t, C_t)`` depend only on elements before ``t``. Hence

* generating direction (noise ``z`` -> data ``x``, e.g. an IAF student, Parallel WaveNet /
  ClariNet): ``x_t | z_<t ~ N(C_t, exp(L_t)^2)``, a Gaussian given the noise that made the
  earlier samples;
* scoring direction (data ``x`` -> noise ``z ~ N(0, 1)``, e.g. a MAF teacher):
  ``z_t = x_t exp(L_t) + C_t`` so ``x_t | x_<t ~ N(-C_t exp(-L_t), exp(-L_t)^2)``.

Both are computed here in one pass over the layers, which needs each autoregressive
conditioner to read the *input* side of its layer in that direction (IAF layers when
generating, MAF layers when scoring); the other combination is sequential and refused.

References:
    A. van den Oord et al., "Parallel WaveNet: Fast high-fidelity speech synthesis", ICML 2018.
    W. Ping, K. Peng, J. Chen, "ClariNet: Parallel wave generation in end-to-end text-to-speech",
    ICLR 2019 (section 3.2: the composed Gaussian of an IAF stack; closed-form KL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from seqflow.nn.context import Context
from seqflow.transforms.autoregressive import AutoregressiveAffine
from seqflow.transforms.base import Compose, Transform
from seqflow.transforms.elementwise import Scaling
from seqflow.transforms.normalization import ActNorm
from seqflow.transforms.sequence import SequenceStack

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class StepGaussian:
    """Per-element Gaussian ``N(mean, exp(log_scale)^2)`` of a flow's data.

    Attributes:
        values: the other end of the flow, shaped like its input: the data ``x`` when
            generating, the noise ``z`` when scoring.
        mean: ``(batch, channels, time)`` (or ``(batch, features)``) mean of each data element
            given the earlier ones.
        log_scale: log standard deviation, same shape.
    """

    values: Tensor
    mean: Tensor
    log_scale: Tensor

    def log_prob(self, x: Tensor) -> Tensor:
        """``sum log N(x; mean, exp(log_scale)^2)`` per batch element, ``(batch,)``."""
        z = (x - self.mean) * torch.exp(-self.log_scale)
        return (-0.5 * z.square() - self.log_scale - _HALF_LOG_2PI).flatten(1).sum(1)


def _layers(transform: Transform, context: Context) -> list[tuple[Transform, Context]]:
    """Leaf layers in ``forward`` order with the context each one reads."""
    if isinstance(transform, SequenceStack):
        context = transform._sample_rate_context(context)
    if isinstance(transform, Compose):
        return [pair for t in transform.transforms for pair in _layers(t, context)]
    return [(transform, context)]


def _check_layer(layer: Transform, generate: bool) -> None:
    """Raise the one-line error of :func:`_layer_affine` without running the layer."""
    name = type(layer).__name__
    if isinstance(layer, AutoregressiveAffine):
        if (layer.conditioner_side == "noise") != generate:
            direction = "generating" if generate else "scoring"
            raise ValueError(f"{name}: its conditioner reads the output side in the {direction} "
                             "direction, which is sequential; the one-pass per-step Gaussian "
                             "needs IAF layers to generate and MAF layers to score")
        if layer.features != 1:
            raise ValueError(f"{name}: features={layer.features}; per-step Gaussians are "
                             "defined here for single-channel autoregressive layers only")
        return
    if isinstance(layer, ActNorm):
        if not layer._initialized:
            raise ValueError("ActNorm: not initialized; its per-step Gaussian is undefined")
        return
    if not isinstance(layer, Scaling):
        raise ValueError(f"{name}: not an elementwise or autoregressive affine layer (Scaling, "
                         "ActNorm, AutoregressiveAffine); its per-step conditional is not "
                         "Gaussian in closed form, use a Monte Carlo KL")


def check_gaussian_steps(transform: Transform, generate: bool) -> None:
    """Raise a one-line ``ValueError`` unless every layer of ``transform`` has a one-pass
    per-step Gaussian in the generating (``generate=True``) or scoring direction."""
    for layer, _ in _layers(transform, None):
        _check_layer(layer, generate)


def _layer_affine(layer: Transform, u: Tensor, context: Context,
                  generate: bool) -> tuple[Tensor, Tensor]:
    """``(c, l)`` with ``layer(u) = u * exp(l) + c`` elementwise in the given direction."""
    _check_layer(layer, generate)
    if isinstance(layer, AutoregressiveAffine):
        layer.validate(u, context, "per-step Gaussian")
        shift, log_scale = layer.params(u, context)
        if generate:  # x = z exp(s) + mu
            return shift, log_scale
        return -shift * torch.exp(-log_scale), -log_scale  # z = (x - mu) exp(-s)
    dims = (1, -1) if u.dim() == 3 else (-1,)
    if isinstance(layer, Scaling):
        layer._scale(u)  # validates the shape
        s = layer.log_scale.view(dims).expand_as(u)
        return torch.zeros_like(u), (-s if generate else s)  # forward: z = x exp(s)
    s = layer.log_scale.view(dims).expand_as(u)  # ActNorm
    loc = layer.loc.view(dims).expand_as(u)
    if generate:  # x = z exp(s) + loc
        return loc, s
    return -loc * torch.exp(-s), -s  # z = (x - loc) exp(-s)


def _compose(transform: Transform, inputs: Tensor, context: Context,
             generate: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(outputs, C, L)`` with ``outputs = inputs * exp(L) + C`` per element (one pass)."""
    layers = _layers(transform, context)
    if generate:
        layers = layers[::-1]  # noise -> data applies the forward layers in reverse
    u = inputs
    shift = torch.zeros_like(inputs)
    log_scale = torch.zeros_like(inputs)
    for layer, ctx in layers:
        c, log = _layer_affine(layer, u, ctx, generate)
        scale = torch.exp(log)
        u = torch.addcmul(c, u, scale)
        shift = torch.addcmul(c, shift, scale)
        log_scale = log_scale + log
    return u, shift, log_scale


def generated_gaussian(transform: Transform, z: Tensor, context: Context = None) -> StepGaussian:
    """Push noise ``z`` through ``transform.inverse`` and return the per-step Gaussian.

    ``x_t = z_t * Sigma_t + M_t`` with ``(M_t, log Sigma_t)`` functions of ``z_<t``, so
    ``x_t | z_<t ~ N(M_t, Sigma_t^2)``.

    Args:
        transform: elementwise affine (Scaling, ActNorm) and IAF-type layers, possibly nested
            in :class:`Compose`/:class:`SequenceStack` (whose upsampler runs once).
        z: noise ``(batch, 1, time)`` (or ``(batch, 1)``).
        context: the flow's context (e.g. a log-mel ``SequenceContext``).

    Returns:
        :class:`StepGaussian` with ``values = x`` (equal to ``transform.inverse(z)[0]``),
        ``mean = M`` and ``log_scale = log Sigma``, all shaped like ``z``.
    """
    x, mean, log_scale = _compose(transform, z, context, generate=True)
    return StepGaussian(x, mean, log_scale)


def scored_gaussian(transform: Transform, x: Tensor, context: Context = None) -> StepGaussian:
    """Push data ``x`` through ``transform`` (data -> noise) and return ``p(x_t | x_<t)``.

    With a standard-normal base, ``z_t = x_t exp(L_t) + C_t`` gives
    ``x_t | x_<t ~ N(-C_t exp(-L_t), exp(-L_t)^2)``.

    Args:
        transform: elementwise affine (Scaling, ActNorm) and MAF-type layers, possibly nested.
        x: data ``(batch, 1, time)`` (or ``(batch, 1)``).
        context: the flow's context.

    Returns:
        :class:`StepGaussian` with ``values = z`` (equal to ``transform(x)[0]``), the mean and
        the log standard deviation of each ``x_t`` given ``x_<t``, all shaped like ``x``.
    """
    z, shift, log_scale = _compose(transform, x, context, generate=False)
    return StepGaussian(z, -shift * torch.exp(-log_scale), -log_scale)


def gaussian_kl(mean_q: Tensor, log_scale_q: Tensor, mean_p: Tensor,
                log_scale_p: Tensor) -> Tensor:
    """Elementwise ``KL(N(mean_q, e^{2 log_scale_q}) || N(mean_p, e^{2 log_scale_p}))`` in nats.

    ``log s_p - log s_q + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2``, any broadcastable shapes.
    """
    ratio = torch.exp(2 * (log_scale_q - log_scale_p))
    gap = (mean_q - mean_p) * torch.exp(-log_scale_p)
    return log_scale_p - log_scale_q + 0.5 * (ratio + gap.square()) - 0.5
