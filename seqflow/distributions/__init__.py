"""Distributions: base (noise) distributions, context-dependent posteriors, :class:`Flow`,
and the MADE mixture of Gaussians."""

from seqflow.distributions.base import (
    DiagonalNormal,
    Distribution,
    StandardLogistic,
    StandardNormal,
)
from seqflow.distributions.conditional import ConditionalDiagonalNormal
from seqflow.distributions.flow import Flow
from seqflow.distributions.mixture import MADEMoG

__all__ = [
    "ConditionalDiagonalNormal",
    "DiagonalNormal",
    "Distribution",
    "Flow",
    "MADEMoG",
    "StandardLogistic",
    "StandardNormal",
]
