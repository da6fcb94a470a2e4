"""Invertible transforms. ``forward``: data -> noise; ``inverse``: noise -> data."""

from seqflow.transforms.autoregressive import AutoregressiveAffine
from seqflow.transforms.base import Compose, Inverse, Transform
from seqflow.transforms.coupling import AdditiveCoupling, AffineCoupling
from seqflow.transforms.elementwise import Scaling, soft_clamp
from seqflow.transforms.gaussian_steps import (
    StepGaussian,
    check_gaussian_steps,
    gaussian_kl,
    generated_gaussian,
    scored_gaussian,
)
from seqflow.transforms.linear import InvertibleLinear, RandomPermutation, Reverse
from seqflow.transforms.linear_prediction import LinearPrediction
from seqflow.transforms.maf import IAF, MAF
from seqflow.transforms.normalization import ActNorm, BatchNormFlow
from seqflow.transforms.planar_radial import Planar, Radial
from seqflow.transforms.sequence import SequenceIAF, SequenceMAF, SequenceStack
from seqflow.transforms.waveglow import WaveGlow

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "AutoregressiveAffine",
    "BatchNormFlow",
    "Compose",
    "IAF",
    "Inverse",
    "InvertibleLinear",
    "LinearPrediction",
    "MAF",
    "Planar",
    "Radial",
    "RandomPermutation",
    "Reverse",
    "Scaling",
    "SequenceIAF",
    "SequenceMAF",
    "SequenceStack",
    "StepGaussian",
    "Transform",
    "WaveGlow",
    "check_gaussian_steps",
    "gaussian_kl",
    "generated_gaussian",
    "scored_gaussian",
    "soft_clamp",
]
