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
from seqflow.transforms import SequenceMAF, SequenceStack
from seqflow.transforms.autoregressive import affine

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def maf_layers(flow: nn.Module) -> tuple[list[SequenceMAF], SequenceStack | None]:
    """The MAF layers of ``flow`` (a :class:`Flow` over one :class:`SequenceMAF` or a
    :class:`SequenceStack` of them) and the stack, or raise a one-line ValueError."""
    if not isinstance(flow, Flow) or not isinstance(flow.base, StandardNormal):
        raise ValueError(f"per-element log-densities need a Flow with a StandardNormal base, "
                         f"got {type(flow).__name__}")
    transform = flow.transform
    if isinstance(transform, SequenceMAF):
        return [transform], None
    if isinstance(transform, SequenceStack) and transform.side == "data":
        layers = list(transform.layers)
        first = layers[0].conditioner.degrees
        if any(not torch.equal(layer.conditioner.degrees, first) for layer in layers[1:]):
            raise ValueError("per-element log-densities need every MAF layer in the same "
                             "channel order (the stack is then autoregressive as a whole)")
        return layers, transform
    raise ValueError(f"per-element log-densities need a SequenceMAF or a SequenceStack of "
                     f"SequenceMAF layers, got {type(transform).__name__}")


def elementwise_log_prob(flow: Flow, x: Tensor, context: Context = None) -> Tensor:
    """``log p(x_i | x_<i)`` for every element of ``x`` ``(batch, channels, time)``.

    Returns ``(batch, channels, time)``; its sum over channels and time is
    ``flow.log_prob(x, context)``.
    """
    layers, stack = maf_layers(flow)
    if stack is not None:
        context = stack._sample_rate_context(context)  # upsample once, as the stack does
    y, total_log_scale = x, torch.zeros_like(x)
    for layer in layers:
        layer.validate(y, context, "elementwise_log_prob")
        shift, log_scale = layer.params(y, context)
        y = affine(y, shift, log_scale, generate=False)
        total_log_scale = total_log_scale + log_scale
    return -0.5 * y.square() - _HALF_LOG_2PI - total_log_scale


class MaskedLikelihoodTask(Task):
    """Minimize the negative log-likelihood of the observed elements of each window.

    Batches carry ``mask`` ``(batch, channels, time)`` (True where the target counts), besides
    ``x`` and ``context``. The loss is the NLL summed over counted elements divided by their
    number (nats per observed element); ``evaluate`` returns each window's NLL summed over its
    counted elements, in nats.
    """

    def __init__(self, flow: Flow):
        super().__init__()
        maf_layers(flow)  # refuse a flow without per-element densities at construction
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
