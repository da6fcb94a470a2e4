"""Builders of the classic vector flows, shared by the model registry, recipes and tools.

Every builder takes ``log_scale_bound`` (the smooth bound of each affine layer's log-scale,
default :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND`, 6) and hands it to every
layer it builds, so ``model.log_scale_bound`` reaches every kind of the model registry.
"""

from __future__ import annotations

from seqflow.transforms.base import Compose, Transform
from seqflow.transforms.coupling import AffineCoupling
from seqflow.transforms.elementwise import LOG_SCALE_BOUND
from seqflow.transforms.linear import InvertibleLinear, Reverse
from seqflow.transforms.maf import MAF
from seqflow.transforms.normalization import ActNorm


def glow_steps(features: int, steps: int, hidden_features: int = 64, blocks: int = 2,
               log_scale_bound: float = LOG_SCALE_BOUND) -> Compose:
    """``steps`` x (ActNorm -> invertible 1x1 -> affine coupling), alternating parity (Glow).

    >>> glow_steps(2, steps=3, hidden_features=8)[2].__class__.__name__
    'AffineCoupling'
    """
    layers: list[Transform] = []
    for i in range(steps):
        layers += [ActNorm(features), InvertibleLinear(features),
                   AffineCoupling(features, parity=i % 2, hidden_features=hidden_features,
                                  blocks=blocks, log_scale_bound=log_scale_bound)]
    return Compose(layers)


def realnvp_steps(features: int, steps: int, hidden_features: int = 64, blocks: int = 2,
                  log_scale_bound: float = LOG_SCALE_BOUND) -> Compose:
    """``steps`` affine couplings with alternating parity (RealNVP)."""
    return Compose([AffineCoupling(features, parity=i % 2, hidden_features=hidden_features,
                                   blocks=blocks, log_scale_bound=log_scale_bound)
                    for i in range(steps)])


def maf_steps(features: int, steps: int, hidden_features: int | None = None, blocks: int = 2,
              context_features: int | None = None,
              log_scale_bound: float = LOG_SCALE_BOUND) -> Compose:
    """``steps`` MAF layers with the order reversed between them (MAF paper)."""
    layers: list[Transform] = []
    for i in range(steps):
        layers.append(MAF(features, hidden_features=hidden_features, blocks=blocks,
                          context_features=context_features, log_scale_bound=log_scale_bound))
        if i < steps - 1:
            layers.append(Reverse(features))
    return Compose(layers)
