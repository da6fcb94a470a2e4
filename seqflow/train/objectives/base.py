"""The engine's contract: a *task* turns a batch into a loss, and scores held-out batches.

A task is an ``nn.Module``; the engine wraps it (accelerate/DDP hook ``forward``), optimizes the
parameters it registers, checkpoints its state, and saves ``task.model``'s weights as the run's
``best``/``final`` weights. A frozen module (e.g. a teacher) rides along through
:meth:`Task.attach_frozen`: it is not registered, so it is never optimized, checkpointed twice
or wrapped by DDP; the engine moves it to the task's device and keeps it in eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor, nn

LN2 = math.log(2.0)


@dataclass
class TaskOutput:
    """``loss``: scalar to minimize; ``metrics``: detached scalars to log."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class Task(nn.Module):
    """Base of every training task.

    Subclasses set ``self.model`` (the module whose weights a run saves) and implement
    :meth:`forward` ``(batch) -> TaskOutput`` and :meth:`evaluate` ``(batch) -> (batch,)``
    per-sample scores (lower is better; the engine keeps the weights with the lowest mean).
    """

    model: nn.Module
    score_name = "nll"

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_frozen", {})
        self.step = 0  # the optimizer step being computed; the engine sets it (schedules)

    def attach_frozen(self, name: str, module: nn.Module) -> nn.Module:
        """Keep ``module`` beside the task without registering it; returns it, frozen."""
        module.eval().requires_grad_(False)
        self._frozen[name] = module
        return module

    def frozen(self) -> dict[str, nn.Module]:
        return dict(self._frozen)

    def initialize(self, batch: dict) -> None:
        """Data-dependent initialization (e.g. ActNorm) from the first global batch."""

    def forward(self, batch: dict) -> TaskOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate(self, batch: dict) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def units(self, mean_score: float, batch: dict) -> dict[str, float]:
        """The mean score in the units reported for this task."""
        return {self.score_name: mean_score}


def nll_units(nll_per_sample: float, dims: int) -> dict[str, float]:
    """Express a mean NLL (nats per sample) in the other units.

    >>> nll_units(2 * math.log(2), dims=2)
    {'nll': 1.3862943611198906, 'nats_per_dim': 0.6931471805599453, 'bits_per_dim': 1.0}
    """
    return {
        "nll": nll_per_sample,
        "nats_per_dim": nll_per_sample / dims,
        "bits_per_dim": nll_per_sample / dims / LN2,
    }
