"""Maximum likelihood of a sequence MAF with missing targets masked out of the loss.

A stack of MAF layers that all share one autoregressive order (time-major, then the same
channel order) is itself autoregressive: element ``i`` of the final noise ``z`` depends on
data elements ``<= i`` only, so the Jacobian ``dz/dx`` is triangular and its diagonal entry
``i`` is ``prod_l exp(-s_l[i])`` over the layers ``l``. Hence

    log p(x_i | x_<i) = log N(z_i; 0, 1) - sum_l s_l[i],

and the flow's ``log_prob`` is the sum of these terms over all elements. Leaving out the
terms of unobserved elements gives the likelihood of the observed targets given everything
before them (the missing ones filled in the input), as DeepAR trains on series with gaps
(Salinas et al., "DeepAR", International Journal of Forecasting 36, 2020).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqflow.distributions import Flow, StandardNormal
from seqflow.nn.context import Context
from seqflow.train.objectives.base import Task, TaskOutput
from seqflow.transforms import check_gaussian_steps, scored_gaussian

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def elementwise_log_prob(flow: Flow, x: Tensor, context: Context = None) -> Tensor:
    """``log p(x_i | x_<i)`` for every element of ``x`` ``(batch, channels, time)``.

    Returns ``(batch, channels, time)``; its sum over channels and time is
    ``flow.log_prob(x, context)``. Needs a standard-normal base and layers whose per-step
    conditional is Gaussian in one forward (data -> noise) pass
    (:func:`~seqflow.transforms.scored_gaussian`: MAF layers in one channel order, elementwise
    affine layers).
    """
    check_elementwise_flow(flow)
    steps = scored_gaussian(flow.transform, x, context)
    return -0.5 * steps.values.square() - steps.log_scale - _HALF_LOG_2PI  # z is standard normal


def check_elementwise_flow(flow: nn.Module) -> None:
    """Raise a one-line ValueError unless ``flow`` has per-element log-densities in one pass."""
    if not isinstance(flow, Flow) or not isinstance(flow.base, StandardNormal):
        raise ValueError(f"per-element log-densities need a Flow with a StandardNormal base, "
                         f"got {type(flow).__name__}")
    try:
        check_gaussian_steps(flow.transform, inverse=False)
    except ValueError as err:
        raise ValueError(f"per-element log-densities: {err}") from None


class MaskedLikelihoodTask(Task):
    """Minimize the negative log-likelihood of the observed elements of each window.

    Batches carry ``mask`` ``(batch, channels, time)`` (True where the target counts), besides
    ``x`` and ``context``. The loss is the NLL summed over counted elements divided by their
    number (nats per observed element); ``evaluate`` returns each window's NLL summed over its
    counted elements, in nats.
    """

    def __init__(self, flow: Flow):
        super().__init__()
        check_elementwise_flow(flow)  # refuse at construction, not at the first batch
        self.model = flow

    def _masked(self, batch: dict) -> tuple[Tensor, Tensor]:
        if "mask" not in batch:
            raise ValueError("the masked_likelihood task needs batches with a 'mask' of "
                             "observed elements (e.g. seqflow.forecasting.paths.WindowBatches)")
        x = batch["x"]
        mask = torch.as_tensor(batch["mask"]).to(device=x.device)
        if mask.shape != x.shape:
            raise ValueError(f"batch mask of shape {tuple(mask.shape)} does not match x of "
                             f"shape {tuple(x.shape)}")
        elements = elementwise_log_prob(self.model, x, batch.get("context"))
        return torch.where(mask.bool(), elements, torch.zeros_like(elements)), mask

    def forward(self, batch: dict) -> TaskOutput:
        log_probs, mask = self._masked(batch)
        per_window = -log_probs.flatten(1).sum(1)
        count = mask.sum().clamp(min=1)
        return TaskOutput(loss=per_window.sum() / count,
                          metrics={"nll": per_window.mean().detach(),
                                   "observed": (mask.sum() / mask.numel()).detach().float()})

    def evaluate(self, batch: dict) -> Tensor:
        log_probs, _ = self._masked(batch)
        return -log_probs.flatten(1).sum(1)
