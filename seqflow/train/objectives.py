"""Training objectives: a pluggable map from (model, batch) to a scalar loss.

An objective is any callable ``objective(model, batch, step) -> ObjectiveOutput``; the engine
only calls it, backpropagates ``loss`` and logs ``metrics``. ``model`` is the wrapped
:class:`LogProbModel` (calling it runs DDP's hooks), ``batch`` a tensor ``(batch, *event)``.

Negative log-likelihood is reported in nats per dimension and bits per dimension:
``bits = nats / ln 2`` and ``per dim = per sample / prod(event shape)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn

from seqflow.distributions import Flow

LN2 = math.log(2.0)


def log_prob_of(model: nn.Module, x: Tensor, context: Tensor | None = None) -> Tensor:
    """``model.log_prob(x)`` ``(batch, *event) -> (batch,)`` for a :class:`Flow` or any module
    with a ``log_prob(x[, context])`` method (e.g. :class:`~seqflow.mixture.MADEMoG`).

    A :class:`Flow` skips its NaN/Inf input scan here: the engine checks the loss instead.
    """
    if isinstance(model, Flow):
        return model.log_prob(x, context, validate=False)
    return model.log_prob(x) if context is None else model.log_prob(x, context)


class LogProbModel(nn.Module):
    """Wrap a flow so that ``forward(x) = flow.log_prob(x)``: ``(batch, *event) -> (batch,)``.

    DDP and ``accelerate.prepare`` hook a module's ``forward``; a :class:`Flow` is scored through
    ``log_prob``, so the engine trains this wrapper. ``flow`` may be any module with ``log_prob``.
    """

    def __init__(self, flow: nn.Module):
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return log_prob_of(self.flow, x, context)


@dataclass
class ObjectiveOutput:
    """``loss``: scalar to minimize; ``metrics``: detached scalars to log."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class Objective(Protocol):
    name: str

    def __call__(self, model: nn.Module, batch: Tensor, step: int) -> ObjectiveOutput: ...


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


class NLLObjective:
    """Maximum likelihood: minimize the mean NLL in nats per dimension."""

    name = "nll"

    def __call__(self, model: nn.Module, batch: Tensor, step: int) -> ObjectiveOutput:
        log_prob = model(batch)
        dims = batch[0].numel()
        nll = -log_prob.mean()
        return ObjectiveOutput(loss=nll / dims, metrics={"nll": nll.detach()})


OBJECTIVES: dict[str, type] = {"nll": NLLObjective}


def build_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"train.objective: {name!r} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]()


@torch.no_grad()
def evaluate_nll(flow: nn.Module, data: Tensor, batch_size: int) -> tuple[float, int]:
    """Sum of NLL (nats) over the rows of ``data`` ``(rows, *event)`` and the row count."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(data), batch_size):
        chunk = data[start:start + batch_size]
        total += -log_prob_of(flow, chunk).double().sum().cpu()
    return float(total), len(data)
