"""Generated 2-D toy densities (no download): two moons, eight Gaussians, checkerboard, pinwheel.

All samplers return float32 tensors of shape ``(num_samples, 2)``, roughly standardized to the
box ``[-4, 4]^2``, and are deterministic given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def two_moons(num_samples: int, generator: torch.Generator, noise: float = 0.1) -> Tensor:
    angle = torch.rand(num_samples, generator=generator) * math.pi
    is_upper = torch.rand(num_samples, generator=generator) < 0.5
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    points = torch.where(is_upper[:, None], upper, lower)
    points = points + noise * torch.randn(num_samples, 2, generator=generator)
    return (points - torch.tensor([0.5, 0.25])) * 2.0


def eight_gaussians(num_samples: int, generator: torch.Generator, scale: float = 3.0) -> Tensor:
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = scale * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    which = torch.randint(0, 8, (num_samples,), generator=generator)
    return centers[which] + 0.3 * torch.randn(num_samples, 2, generator=generator)


def checkerboard(num_samples: int, generator: torch.Generator) -> Tensor:
    x1 = torch.rand(num_samples, generator=generator) * 4 - 2
    x2_ = torch.rand(num_samples, generator=generator) - torch.randint(
        0, 2, (num_samples,), generator=generator
    ) * 2.0
    x2 = x2_ + (torch.floor(x1) % 2)
    return torch.stack([x1, x2], dim=1) * 2.0


def pinwheel(num_samples: int, generator: torch.Generator) -> Tensor:
    arms, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    rads = torch.linspace(0, 2 * math.pi, arms + 1)[:-1]
    features = torch.randn(num_samples, 2, generator=generator) * torch.tensor(
        [radial_std, tangential_std]
    )
    features[:, 0] += 1.0
    labels = torch.randint(0, arms, (num_samples,), generator=generator)
    angles = rads[labels] + rate * torch.exp(features[:, 0])
    cos, sin = torch.cos(angles), torch.sin(angles)
    rotations = torch.stack([cos, -sin, sin, cos], dim=1).reshape(-1, 2, 2)
    return 2.0 * torch.einsum("ni,nij->nj", features, rotations)


TOY_DATASETS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "moons": two_moons,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}


def sample_toy(name: str, num_samples: int, seed: int = 0) -> Tensor:
    """Draw ``(num_samples, 2)`` points from a named toy density.

    >>> sample_toy("moons", 4, seed=0).shape
    torch.Size([4, 2])
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {sorted(TOY_DATASETS)}")
    generator = torch.Generator().manual_seed(seed)
    return TOY_DATASETS[name](num_samples, generator).float()
