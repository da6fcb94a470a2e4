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

* inverse (generative) direction, noise ``z`` -> data ``x`` (e.g. an IAF student, Parallel
  WaveNet / ClariNet): ``x_t | z_<t ~ N(C_t, exp(L_t)^2)``, a Gaussian given the noise that
  made the earlier samples;
* forward (normalizing) direction, data ``x`` -> noise ``z ~ N(0, 1)`` (e.g. a MAF teacher):
  ``z_t = x_t exp(L_t) + C_t`` so ``x_t | x_<t ~ N(-C_t exp(-L_t), exp(-L_t)^2)``.

Both are computed in one pass over the layers (:meth:`Transform.step_affine`, which each layer
kind implements and :class:`~seqflow.transforms.Compose` composes), which needs each
autoregressive conditioner to read the *input* side of its layer in that direction (IAF layers
in the inverse direction, MAF layers in the forward direction); the other combination is
sequential and refused. Both take the direction as ``inverse: bool`` (``True``: inverse,
noise -> data; ``False``: forward, data -> noise), as :meth:`Transform.step_affine` does.
Layers of several channels compose when they share one channel order.

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
from seqflow.transforms.base import Transform

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class StepGaussian:
    """Per-element Gaussian ``N(mean, exp(log_scale)^2)`` of a flow's data.

    Attributes:
        values: the other end of the flow, shaped like its input: the data ``x`` in the
            inverse direction, the noise ``z`` in the forward direction.
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


def check_gaussian_steps(transform: Transform, inverse: bool) -> None:
    """Raise a one-line ``ValueError`` unless every layer of ``transform`` has a one-pass
    per-step Gaussian in the inverse (``inverse=True``: noise -> data, generative) or the
    forward (``inverse=False``: data -> noise, normalizing) direction."""
    transform.check_step_affine(inverse)


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
    x, mean, log_scale = transform.step_affine(z, context, inverse=True)
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
    z, shift, log_scale = transform.step_affine(x, context, inverse=False)
    return StepGaussian(z, -shift * torch.exp(-log_scale), -log_scale)


def gaussian_kl(mean_q: Tensor, log_scale_q: Tensor, mean_p: Tensor,
                log_scale_p: Tensor) -> Tensor:
    """Elementwise ``KL(N(mean_q, e^{2 log_scale_q}) || N(mean_p, e^{2 log_scale_p}))`` in nats.

    ``log s_p - log s_q + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2``, any broadcastable shapes.
    """
    ratio = torch.exp(2 * (log_scale_q - log_scale_p))
    gap = (mean_q - mean_p) * torch.exp(-log_scale_p)
    return log_scale_p - log_scale_q + 0.5 * (ratio + gap.square()) - 0.5
