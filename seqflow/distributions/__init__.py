"""Distributions: base (noise) distributions, context-dependent posteriors, :class:`Flow`,
the MADE mixture of Gaussians, and latent-variable models with their variational bounds."""

from seqflow.distributions.base import (
    DiagonalNormal,
    Distribution,
    StandardLogistic,
    StandardNormal,
)
from seqflow.distributions.conditional import ConditionalDiagonalNormal
from seqflow.distributions.flow import Flow
from seqflow.distributions.latent import (
    BoundTerms,
    LatentVariableModel,
    bound_terms,
    variational_bounds,
)
from seqflow.distributions.mixture import MADEMoG

__all__ = [
    "BoundTerms",
    "ConditionalDiagonalNormal",
    "DiagonalNormal",
    "Distribution",
    "Flow",
    "LatentVariableModel",
    "MADEMoG",
    "StandardLogistic",
    "StandardNormal",
    "bound_terms",
    "variational_bounds",
]
