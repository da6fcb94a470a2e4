"""The masked-likelihood task: per-element conditional log-densities of a sequence MAF stack."""

from __future__ import annotations

import math

import pytest
import torch

from seqflow.distributions import Flow, StandardNormal
from seqflow.train.objectives import MaskedLikelihoodTask, elementwise_log_prob
from seqflow.train.registry import TASKS
from seqflow.transforms import SequenceIAF, SequenceMAF, SequenceStack
from tests.sequence_helpers import perturb, single_thread  # noqa: F401

C, F = 3, 2


def stack_flow(conditioner: str, steps: int = 2, orders=None) -> Flow:
    sizes = (dict(residual_channels=8, skip_channels=8, blocks=3) if conditioner == "wavenet"
             else dict(hidden_features=8, head_features=8))
    orders = orders or ["natural"] * steps
    layers = [SequenceMAF(C, conditioner=conditioner, cond_channels=F, order=order, **sizes)
              for order in orders]
    flow = Flow(SequenceStack(layers, cond_channels=F), StandardNormal(C)).double()
    return perturb(flow, scale=0.3)


def data(batch: int = 4, length: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, C, length, generator=g, dtype=torch.float64)
    context = torch.randn(batch, F, length, generator=g, dtype=torch.float64)
    return x, context


@pytest.mark.parametrize("conditioner", ["wavenet", "lstm"])
def test_elements_sum_to_the_flow_log_prob(conditioner):
    flow = stack_flow(conditioner)
    x, context = data()
    elements = elementwise_log_prob(flow, x, context)
    assert elements.shape == x.shape
    torch.testing.assert_close(elements.sum((1, 2)), flow.log_prob(x, context), rtol=0,
                               atol=1e-10)


def test_each_element_is_log_normal_of_z_plus_the_jacobian_diagonal():
    """Independent of the per-layer sum: autograd's Jacobian of the whole stack is lower
    triangular in the time-major, channel order and its diagonal gives the conditionals."""
    flow = stack_flow("wavenet", steps=3)
    x, context = data(batch=1, length=5)
    z, _ = flow.transform(x, context)

    def transform(flat):  # both sides flattened in (time, channel) order
        v = flat.view(1, 5, C).permute(0, 2, 1)
        return flow.transform(v, context)[0].permute(0, 2, 1).flatten()

    jac = torch.autograd.functional.jacobian(transform, x.permute(0, 2, 1).flatten())
    assert torch.allclose(jac.triu(1), torch.zeros_like(jac), atol=1e-12)  # autoregressive
    diagonal = jac.diagonal().abs().log()
    z_flat = z.permute(0, 2, 1).flatten()
    expected = -0.5 * z_flat.square() - 0.5 * math.log(2 * math.pi) + diagonal
    got = elementwise_log_prob(flow, x, context).permute(0, 2, 1).flatten()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_masking_the_last_steps_gives_the_log_density_of_the_prefix():
    """An autoregressive model's marginal of the first T' steps is the flow run on them."""
    flow = stack_flow("lstm")
    x, context = data(length=12)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., 8:] = False
    task = MaskedLikelihoodTask(flow)
    scores = task.evaluate({"x": x, "context": context, "mask": mask})
    prefix = flow.log_prob(x[..., :8].contiguous(), context[..., :8].contiguous())
    torch.testing.assert_close(scores, -prefix, rtol=0, atol=1e-10)


def test_loss_is_nats_per_observed_element_and_ignores_masked_terms():
    flow = stack_flow("wavenet")
    x, context = data()
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(x.shape, generator=g) < 0.7
    out = TASKS["masked_likelihood"](flow, None)({"x": x, "context": context, "mask": mask})
    elements = elementwise_log_prob(flow, x, context)
    expected = -(elements[mask]).sum() / mask.sum()
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-10)
    out.loss.backward()  # the masked terms carry no gradient of their own
    assert all(p.grad is not None for p in flow.parameters() if p.requires_grad)


def test_refuses_flows_without_per_element_conditionals_and_batches_without_a_mask():
    iaf = Flow(SequenceStack([SequenceIAF(C, residual_channels=4, skip_channels=4, blocks=1)]),
               StandardNormal(C))
    with pytest.raises(ValueError, match="SequenceIAF: .*MAF layers in the forward direction"):
        MaskedLikelihoodTask(iaf)
    with pytest.raises(ValueError, match="order the channels differently"):
        MaskedLikelihoodTask(stack_flow("wavenet", orders=["natural", "reversed"]))
    task = MaskedLikelihoodTask(stack_flow("wavenet"))
    x, context = data()
    with pytest.raises(ValueError, match="'mask'"):
        task({"x": x, "context": context})
    with pytest.raises(ValueError, match="does not match"):
        task({"x": x, "context": context, "mask": torch.ones(4, C, 3, dtype=torch.bool)})
