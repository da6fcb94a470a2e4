"""SequenceFlow: a flow over ``(batch, channels, time)`` whose length may come from the context."""

from __future__ import annotations

from torch import Tensor

from seqflow.distributions import Flow
from seqflow.nn.context import SequenceContext

Context = Tensor | SequenceContext | None


class SequenceFlow(Flow):
    """A :class:`~seqflow.Flow` over sequences whose length may come from the context.

    ``sample(n, context)`` without ``length`` uses the length implied by local features
    (frames x upsampling factor) of any layer that knows it.

    >>> import torch
    >>> from seqflow import StandardNormal, SequenceMAF
    >>> maf = SequenceMAF(1, residual_channels=4, skip_channels=4, layers=2, cond_channels=3,
    ...                   upsample_factor=5)
    >>> flow = SequenceFlow(maf, StandardNormal(1))
    >>> flow.sample(2, context=torch.randn(2, 3, 4)).shape
    torch.Size([2, 1, 20])
    """

    def _length(self, context: Context, length: int | None) -> int:
        if length is not None:
            return length
        for module in self.transform.modules():
            implied = getattr(module, "implied_length", None)
            if implied is not None and context is not None:
                found = implied(context)
                if found is not None:
                    return found
        raise ValueError(
            "SequenceFlow: give length= or a context with local features that implies it"
        )

    def sample_and_log_prob(self, num_samples, context=None, length=None):
        return super().sample_and_log_prob(num_samples, context, self._length(context, length))

    def sample(self, num_samples, context=None, length=None):
        return super().sample(num_samples, context, self._length(context, length))
