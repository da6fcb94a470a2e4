"""MADE with a mixture-of-Gaussians output: the MAF paper's "MADE MoG" density.

``p(x) = prod_i sum_c pi_ic(x_<i) N(x_i; mu_ic(x_<i), sigma_ic(x_<i)^2)`` with all
``3 * components`` parameters of feature ``i`` produced by one :class:`~seqflow.nn.MADE`.
Used alone it is a density estimator; used as the base of a :class:`~seqflow.Flow` of MAF
layers it is "MAF MoG". Scoring is one MADE pass; sampling runs the degree-sliced stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from seqflow.distributions.base import Distribution, draw_noise
from seqflow.nn.made import MADE
from seqflow.transforms.elementwise import LOG_SCALE_BOUND, soft_clamp

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class MADEMoG(Distribution):
    """Autoregressive mixture of Gaussians on ``(batch, features)``, optionally conditional.

    Args:
        features: D.
        components: Gaussians per conditional.
        hidden_features, blocks, order, residual, activation, seed: the MADE's settings.
        context_features: width of an optional context ``(batch, context_features)``.
        log_scale_bound: each component's ``log sigma`` is ``soft_clamp(raw, bound)``; default
            :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).

    ``sample`` draws the component index (not reparameterizable in the mixture weights);
    the Gaussian draw is reparameterized.

    >>> import torch
    >>> mog = MADEMoG(3, components=4, hidden_features=8)
    >>> mog.log_prob(torch.randn(5, 3)).shape
    torch.Size([5])
    >>> mog.sample(2).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        features: int,
        components: int = 10,
        hidden_features: int | None = None,
        blocks: int = 2,
        context_features: int | None = None,
        order: str | Sequence[int] | Tensor = "natural",
        residual: bool = False,
        activation: str = "relu",
        log_scale_bound: float = LOG_SCALE_BOUND,
        seed: int | None = None,
    ):
        super().__init__(features)
        if components < 1:
            raise ValueError(f"MADEMoG: components must be >= 1, got {components}")
        self.features = features
        self.components = components
        self.context_features = context_features
        self.log_scale_bound = log_scale_bound
        self.made = MADE(
            features,
            hidden_features=hidden_features,
            blocks=blocks,
            context_features=context_features,
            order=order,
            residual=residual,
            params_per_feature=3 * components,
            activation=activation,
            seed=seed,
        )

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(..., 3K)`` along dim 1 -> log-weights, means, log-scales, each ``(..., K)``-sized."""
        logits, loc, raw = params.split(self.components, dim=1)
        return (
            F.log_softmax(logits, dim=1),
            loc,
            soft_clamp(raw, self.log_scale_bound),
        )

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``(batch, features) -> (batch,)`` in one MADE pass."""
        self._check(x)
        log_w, loc, log_scale = self._split(self.made.params(x, context))  # (batch, K, D)
        u = (x.unsqueeze(1) - loc) * torch.exp(-log_scale)
        log_normal = -0.5 * u.square() - log_scale - _HALF_LOG_2PI
        return torch.logsumexp(log_w + log_normal, dim=1).sum(dim=1)

    @torch.no_grad()
    def sample(
        self, num_samples: int, context: Tensor | None = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``(num_samples, features)``, one feature per step of the degree-sliced stream."""
        if length is not None:
            raise ValueError("MADEMoG is a vector distribution; length must be None")
        if context is not None and context.shape[0] != num_samples:
            raise ValueError(
                f"MADEMoG.sample: num_samples={num_samples} must equal the context batch "
                f"(context shape {tuple(context.shape)})"
            )
        anchor = self._anchor
        x = torch.zeros(num_samples, self.features, device=anchor.device, dtype=anchor.dtype)
        state = self.made.start_stream(num_samples, context)
        for feature in state.order:
            log_w, loc, log_scale = self._split(state.params(feature))  # (batch, K) each
            weights = log_w.exp()
            if generator is None:
                which = torch.multinomial(weights, 1)  # (batch, 1)
            else:  # drawn where the generator lives, as draw_noise does
                which = torch.multinomial(weights.to(generator.device), 1,
                                          generator=generator).to(anchor.device)
            eps = draw_noise((num_samples, 1), anchor, generator)
            value = loc.gather(1, which) + eps * log_scale.gather(1, which).exp()
            x[:, feature] = value.squeeze(1)
            state.feed(feature, value)
        return x

    def sample_and_log_prob(self, num_samples, context=None, length=None, generator=None):
        x = self.sample(num_samples, context, length, generator)
        return x, self.log_prob(x, context)

    def rsample(self, num_samples, context=None, length=None, generator=None):
        raise NotImplementedError("MADEMoG draws discrete components: its samples are not "
                                  "reparameterizable; use sample")
