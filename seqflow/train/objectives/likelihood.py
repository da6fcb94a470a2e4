"""Maximum likelihood of any flow, with or without a context."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqflow.distributions import Flow
from seqflow.train.objectives.base import Task, TaskOutput, nll_units


def log_prob_of(model: nn.Module, x: Tensor, context=None) -> Tensor:
    """``model.log_prob(x[, context])`` ``(batch, *event) -> (batch,)`` for a :class:`Flow` or any
    module with a ``log_prob`` method (e.g. :class:`~seqflow.distributions.MADEMoG`).

    A :class:`Flow` skips its NaN/Inf input scan here: the engine checks the loss instead.
    """
    if isinstance(model, Flow):
        return model.log_prob(x, context, validate=False)
    return model.log_prob(x) if context is None else model.log_prob(x, context)


class LikelihoodTask(Task):
    """Minimize the mean negative log-likelihood in nats per dimension.

    ``forward`` returns the loss ``NLL / dims`` (dims = elements of one sample, so learning
    rates carry over between vectors and sequences) and logs ``nll`` in nats per sample and
    ``nats_per_dim`` (for audio: nats per audio sample, the unit of ``seqflow eval``);
    ``evaluate`` returns each sample's NLL in nats.
    """

    def __init__(self, flow: nn.Module):
        super().__init__()
        self.model = flow

    def initialize(self, batch: dict) -> None:
        with torch.no_grad():
            log_prob_of(self.model.train(), batch["x"], batch.get("context"))

    def forward(self, batch: dict) -> TaskOutput:
        x = batch["x"]
        nll = -log_prob_of(self.model, x, batch.get("context")).mean()
        dims = x[0].numel()
        return TaskOutput(loss=nll / dims, metrics={"nll": nll.detach(),
                                                    "nats_per_dim": nll.detach() / dims})

    def evaluate(self, batch: dict) -> Tensor:
        return -log_prob_of(self.model, batch["x"], batch.get("context"))

    def units(self, mean_score: float, batch: dict) -> dict[str, float]:
        return nll_units(mean_score, dims=batch["x"][0].numel())
