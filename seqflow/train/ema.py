"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` whose parameters track ``decay``-weighted averages.

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates so
    that early averages are not dominated by the initialization. Buffers are copied, not
    averaged.

    >>> model = nn.Linear(1, 1)
    >>> ema = EMA(model, decay=0.5)
    >>> _ = model.weight.data.fill_(1.0)
    >>> ema.update(model)
    >>> ema.updates
    1
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, param in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(param.detach().to(avg.dtype), 1.0 - decay)
        for avg, buf in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(buf)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
