"""seqflow: autoregressive normalizing flows for audio and other sequences."""

from seqflow.distributions import (
    ConditionalDiagonalNormal,
    DiagonalNormal,
    Distribution,
    Flow,
    MADEMoG,
    StandardLogistic,
    StandardNormal,
)
from seqflow.nn.context import SequenceContext
from seqflow.transforms import *  # noqa: F403
from seqflow.transforms import __all__ as _transforms_all

__version__ = "0.1.0"

__all__ = [
    "ConditionalDiagonalNormal",
    "DiagonalNormal",
    "Distribution",
    "Flow",
    "MADEMoG",
    "StandardLogistic",
    "SequenceContext",
    "StandardNormal",
    *_transforms_all,
]
