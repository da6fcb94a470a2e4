"""Factories for the classic transforms, shared by the property tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

import seqflow.transforms as T


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[int], T.Transform]
    sequences: bool  # accepts (batch, channels, time)


CASES = [
    Case("Planar", T.Planar, False),
    Case("Radial", T.Radial, False),
    Case("AdditiveCoupling", T.AdditiveCoupling, True),
    Case("AffineCoupling", T.AffineCoupling, True),
    Case("AffineCoupling-odd-half", lambda d: T.AffineCoupling(d, parity=1, split="half"), True),
    Case("Scaling", T.Scaling, True),
    Case("ActNorm", T.ActNorm, True),
    Case("InvertibleLinear", T.InvertibleLinear, True),
    Case("BatchNormFlow", T.BatchNormFlow, True),
    Case("Reverse", T.Reverse, True),
    Case("RandomPermutation", T.RandomPermutation, True),
]
SEQUENCE_CASES = [c for c in CASES if c.sequences]


def perturbed(case: Case, features: int, dtype=torch.float64, device="cpu", seed=0,
              sequence: bool = False) -> T.Transform:
    """Build a transform, move it, leave its initialization, and put it in eval mode.

    Data-dependent layers see one training batch first (ActNorm initializes, BatchNormFlow
    gets non-trivial running statistics); then every parameter is randomly perturbed so the
    tests never pass merely because a layer starts at the identity.
    """
    torch.manual_seed(seed)
    transform = case.build(features).to(device=device, dtype=dtype)
    warmup = torch.randn(64, features, *( (5,) if sequence else ()), dtype=dtype, device=device)
    transform.train()
    transform(warmup * 2 + 1)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return transform.eval()
