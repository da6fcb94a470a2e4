"""Latent-variable models ``p(x, z) = p(z) p(x | z)`` with an amortized posterior ``q(z | x)``,
and the bounds on ``log p(x)`` they give.

* ``ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z)) = log p(x) - KL(q(z | x) || p(z | x))``
  (Kingma & Welling 2014; Rezende et al. 2014);
* ``IWAE_k = E[log (1/k) sum_i p(x, z_i) / q(z_i | x)]`` with ``z_i ~ q(z | x)`` i.i.d.
  (Burda et al. 2016): ``IWAE_1 = ELBO``, ``IWAE_k`` never decreases with ``k`` and tends to
  ``log p(x)``, so ``IWAE_1000`` is the usual log-likelihood estimate of a VAE.

Every quantity is in nats per example. ``KL`` here is the rate ``E_q[log q(z | x) - log p(z)]``,
estimated with the same samples as the ELBO (it has no closed form once ``q`` is a flow). The
training tasks that maximize these bounds are in :mod:`seqflow.train.objectives.elbo`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqflow.distributions.base import Distribution

MAX_ROWS = 16_384  # rows (examples x samples) scored in one pass of the decoder


class LatentVariableModel(nn.Module):
    """The contract of the ELBO and IWAE bounds (:func:`bound_terms`) and of the tasks that
    maximize them (:class:`~seqflow.train.ELBOTask`, :class:`~seqflow.train.IWAETask`).

    Subclasses set ``prior`` (a :class:`~seqflow.distributions.Distribution` over
    ``(batch, latent_features)``) and ``posterior`` (a distribution whose
    ``sample_and_log_prob(n, context)`` draws one reparameterized ``z`` per context row, e.g. a
    :class:`~seqflow.Flow` with a :class:`~seqflow.distributions.ConditionalDiagonalNormal`
    base), and implement :meth:`encode` and :meth:`log_likelihood`.
    """

    prior: Distribution
    posterior: Distribution

    def encode(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """The posterior's context ``(batch, context_features)`` of observations ``x``."""
        raise NotImplementedError

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``log p(x | z)``: ``(batch, *event), (batch, latent_features) -> (batch,)``."""
        raise NotImplementedError


@dataclass
class BoundTerms:
    """Per-sample terms, each ``(batch, num_samples)``: ``log p(x | z_s)``, ``log p(z_s)`` and
    ``log q(z_s | x)`` for ``z_s ~ q(z | x)``."""

    log_likelihood: Tensor
    log_prior: Tensor
    log_posterior: Tensor

    @property
    def num_samples(self) -> int:
        return self.log_likelihood.shape[1]

    def log_weights(self) -> Tensor:
        """``log p(x, z_s) - log q(z_s | x)`` ``(batch, num_samples)``."""
        return self.log_likelihood + self.log_prior - self.log_posterior

    def elbo(self) -> Tensor:
        """The ELBO estimate of each example ``(batch,)``, averaged over the samples."""
        return self.log_weights().mean(dim=1)

    def kl(self) -> Tensor:
        """The rate ``E_q[log q(z | x) - log p(z)]`` of each example ``(batch,)``."""
        return (self.log_posterior - self.log_prior).mean(dim=1)

    def reconstruction(self) -> Tensor:
        """``E_q[log p(x | z)]`` of each example ``(batch,)``."""
        return self.log_likelihood.mean(dim=1)

    def iwae(self) -> Tensor:
        """``log (1/k) sum_s exp(log_weight_s)`` of each example ``(batch,)``."""
        return torch.logsumexp(self.log_weights(), dim=1) - math.log(self.num_samples)


def check_latent_model(model: nn.Module, name: str) -> None:
    """Raise a one-line error when ``model`` does not follow :class:`LatentVariableModel`."""
    missing = [attr for attr in ("prior", "posterior", "encode", "log_likelihood")
               if not hasattr(model, attr)]
    if missing:
        raise ValueError(
            f"{name}: the model must be a latent-variable model with prior, posterior, "
            f"encode(x) and log_likelihood(x, z) (seqflow.distributions.LatentVariableModel; "
            f"e.g. recipes/vae/model.py), got {type(model).__name__} without "
            f"{', '.join(missing)}")


def bound_terms(model: LatentVariableModel, x: Tensor, num_samples: int,
                max_rows: int = MAX_ROWS) -> BoundTerms:
    """Draw ``num_samples`` latents per example from ``q(z | x)`` and score them.

    The decoder sees at most ``max_rows`` rows (examples x samples) at once: the samples are
    drawn in chunks and only their ``(batch, num_samples)`` scores are kept, so
    ``num_samples=1000`` fits in memory. Gradients flow through every term (reparameterized
    draws).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"bound_terms: num_samples must be a positive int, got "
                         f"{num_samples!r}")
    if max_rows < 1:
        raise ValueError(f"bound_terms: max_rows must be >= 1, got {max_rows}")
    if len(x) > max_rows:
        parts = [bound_terms(model, part, num_samples, max_rows) for part in x.split(max_rows)]
        return BoundTerms(*(torch.cat([getattr(p, f) for p in parts])
                            for f in ("log_likelihood", "log_prior", "log_posterior")))
    batch = len(x)
    context = model.encode(x)
    chunk = max(1, max_rows // batch)
    pieces = []
    for start in range(0, num_samples, chunk):
        k = min(chunk, num_samples - start)
        rows = context.repeat_interleave(k, dim=0)  # example-major: row b * k + s
        z, log_q = model.posterior.sample_and_log_prob(len(rows), rows)
        log_lik = model.log_likelihood(x.repeat_interleave(k, dim=0), z)
        pieces.append(torch.stack([log_lik, model.prior.log_prob(z), log_q]).view(3, batch, k))
    terms = torch.cat(pieces, dim=2)
    return BoundTerms(terms[0], terms[1], terms[2])


@torch.no_grad()
def variational_bounds(model: LatentVariableModel, x: Tensor, num_samples: int = 1000,
                       max_rows: int = MAX_ROWS) -> dict[str, Tensor]:
    """``elbo``, ``iwae``, ``kl`` and ``reconstruction`` ``(batch,)`` in nats per example, from
    one set of ``num_samples`` draws per example (the ELBO and KL averaged over them)."""
    terms = bound_terms(model, x, num_samples, max_rows)
    return {"elbo": terms.elbo(), "iwae": terms.iwae(), "kl": terms.kl(),
            "reconstruction": terms.reconstruction()}
