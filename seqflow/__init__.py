"""seqflow: autoregressive normalizing flows for audio and other sequences."""

from seqflow.distributions import (
    DiagonalNormal,
    Distribution,
    Flow,
    StandardLogistic,
    StandardNormal,
)
from seqflow.mixture import MADEMoG
from seqflow.sequence_flow import SequenceFlow
from seqflow.transforms import *  # noqa: F403
from seqflow.transforms import __all__ as _transforms_all

__version__ = "0.1.0"

__all__ = [
    "DiagonalNormal",
    "Distribution",
    "Flow",
    "MADEMoG",
    "StandardLogistic",
    "SequenceFlow",
    "StandardNormal",
    *_transforms_all,
]
