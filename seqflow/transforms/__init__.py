"""Invertible transforms. ``forward``: data -> noise; ``inverse``: noise -> data."""

from seqflow.transforms.autoregressive import AutoregressiveAffine
from seqflow.transforms.base import Compose, Inverse, Transform
from seqflow.transforms.elementwise import Scaling, soft_clamp

__all__ = [
    "AutoregressiveAffine",
    "Compose",
    "Inverse",
    "Scaling",
    "Transform",
    "soft_clamp",
]
