"""Degree-based autoregressive masks (MADE, Germain et al. 2015).

Every input gets a degree ``1..D`` (its position in the autoregressive order); every hidden
unit a degree ``0..D-1`` (hidden degree ``k`` may see inputs of degree ``<= k``; degree 0 sees
no input at all); output ``i`` of degree ``d`` may see hidden units of degree ``< d``.

Masks are ``(out_features, in_features)`` float tensors of zeros and ones, ready to multiply a
``nn.Linear`` weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def input_degrees(
    features: int,
    order: str | Sequence[int] | Tensor = "natural",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Degrees ``1..features`` of the inputs, as a ``(features,)`` long tensor.

    ``order`` is ``"natural"`` (degree of feature i is i+1), ``"reversed"``, ``"random"``, or an
    explicit permutation ``p`` where ``p[k]`` is the feature that comes k-th in the order.

    >>> input_degrees(3, [2, 0, 1]).tolist()
    [2, 3, 1]
    """
    if isinstance(order, str):
        if order == "natural":
            return torch.arange(1, features + 1)
        if order == "reversed":
            return torch.arange(features, 0, -1)
        if order == "random":
            return torch.randperm(features, generator=generator) + 1
        raise ValueError(
            f"order must be 'natural', 'reversed', 'random' or a permutation, got {order!r}"
        )
    perm = torch.as_tensor(order, dtype=torch.long)
    if sorted(perm.tolist()) != list(range(features)):
        raise ValueError(f"order must be a permutation of 0..{features - 1}, got {perm.tolist()}")
    degrees = torch.empty(features, dtype=torch.long)
    degrees[perm] = torch.arange(1, features + 1)
    return degrees


def hidden_degrees(units: int, max_degree: int, min_degree: int = 1) -> Tensor:
    """Degrees for ``units`` hidden units, cycling through ``min_degree..max_degree``.

    Cycling (rather than random draws) guarantees every degree is represented whenever
    ``units >= max_degree - min_degree + 1``, so no output loses its inputs and no unit is dead.

    >>> hidden_degrees(5, 3).tolist()
    [1, 2, 3, 1, 2]
    """
    if max_degree < min_degree:  # e.g. a single input: hidden units can see nothing
        return torch.zeros(units, dtype=torch.long)
    span = max_degree - min_degree + 1
    return torch.arange(units) % span + min_degree


def mask_from_degrees(in_degrees: Tensor, out_degrees: Tensor, strict: bool) -> Tensor:
    """``(out, in)`` mask: ``out_deg > in_deg`` when ``strict`` (outputs), else ``>=`` (hidden).

    >>> mask_from_degrees(torch.tensor([1, 2]), torch.tensor([1, 2]), strict=True).tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """
    if strict:
        allowed = out_degrees[:, None] > in_degrees[None, :]
    else:
        allowed = out_degrees[:, None] >= in_degrees[None, :]
    return allowed.float()
