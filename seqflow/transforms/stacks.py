"""Builders of the classic vector flows, shared by the model registry, recipes and tools."""

from __future__ import annotations

from seqflow.transforms.base import Compose, Transform
from seqflow.transforms.coupling import AffineCoupling
from seqflow.transforms.linear import InvertibleLinear, Reverse
from seqflow.transforms.maf import MAF
from seqflow.transforms.normalization import ActNorm


def glow_steps(features: int, steps: int, hidden_features: int = 64, blocks: int = 2) -> Compose:
    """``steps`` x (ActNorm -> invertible 1x1 -> affine coupling), alternating parity (Glow).

    >>> glow_steps(2, steps=3, hidden_features=8)[2].__class__.__name__
    'AffineCoupling'
    """
    layers: list[Transform] = []
    for i in range(steps):
        layers += [ActNorm(features), InvertibleLinear(features),
                   AffineCoupling(features, parity=i % 2, hidden_features=hidden_features,
                                  blocks=blocks)]
    return Compose(layers)


def realnvp_steps(features: int, steps: int, hidden_features: int = 64,
                  blocks: int = 2) -> Compose:
    """``steps`` affine couplings with alternating parity (RealNVP)."""
    return Compose([AffineCoupling(features, parity=i % 2, hidden_features=hidden_features,
                                   blocks=blocks) for i in range(steps)])


def maf_steps(features: int, steps: int, hidden_features: int | None = None, blocks: int = 2,
              context_features: int | None = None) -> Compose:
    """``steps`` MAF layers with the order reversed between them (MAF paper)."""
    layers: list[Transform] = []
    for i in range(steps):
        layers.append(MAF(features, hidden_features=hidden_features, blocks=blocks,
                          context_features=context_features))
        if i < steps - 1:
            layers.append(Reverse(features))
    return Compose(layers)
