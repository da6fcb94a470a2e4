"""Variational inference tasks: the ELBO (with KL annealing) and the importance-weighted bound.

A latent-variable model ``p(x, z) = p(z) p(x | z)`` with an amortized posterior ``q(z | x)``
(:class:`LatentVariableModel`) bounds the log-likelihood of each example from below:

* ``ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z)) = log p(x) - KL(q(z | x) || p(z | x))``
  (Kingma & Welling 2014; Rezende et al. 2014);
* ``IWAE_k = E[log (1/k) sum_i p(x, z_i) / q(z_i | x)]`` with ``z_i ~ q(z | x)`` i.i.d.
  (Burda et al. 2016): ``IWAE_1 = ELBO``, ``IWAE_k`` never decreases with ``k`` and tends to
  ``log p(x)``, so ``IWAE_1000`` is the usual log-likelihood estimate of a VAE.

Every quantity is in nats per example. ``KL`` here is the rate ``E_q[log q(z | x) - log p(z)]``,
estimated with the same samples as the ELBO (it has no closed form once ``q`` is a flow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqflow.distributions import Distribution
from seqflow.train.objectives.anneal import annealed_beta
from seqflow.train.objectives.base import Task, TaskOutput

MAX_ROWS = 16_384  # rows (examples x samples) scored in one pass of the decoder


class LatentVariableModel(nn.Module):
    """The contract of :class:`ELBOTask` and :class:`IWAETask`.

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
            f"encode(x) and log_likelihood(x, z) (seqflow.train.objectives.LatentVariableModel; "
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


@dataclass
class VariationalSettings:
    """The ``train.variational`` section for the ``elbo`` and ``iwae`` tasks.

    ``latent_samples`` draws per example and step, ``iwae_samples`` draws per example when the
    ``iwae`` task evaluates, and the KL weight rising linearly from ``anneal_start`` to 1 over
    ``anneal_steps`` optimizer steps (0: no annealing; :func:`annealed_beta`).
    """

    latent_samples: int = 1
    iwae_samples: int = 1000
    anneal_steps: int = 0
    anneal_start: float = 0.01


class ELBOTask(Task):
    """Maximize the ELBO, optionally with the KL term annealed (warm-up).

    The loss is ``-(E_q[log p(x | z)] - beta KL) / dims`` (per data dimension, like
    :class:`~seqflow.train.objectives.LikelihoodTask`), with
    ``beta = annealed_beta(step, anneal_steps, anneal_start)`` (Bowman et al. 2016, Sonderby et
    al. 2016; Rezende & Mohamed 2015 anneal with ``beta_t = min(1, 0.01 + t / 10000)``).
    ``evaluate`` returns ``-ELBO`` per example (with ``num_samples`` draws), which the engine
    minimizes to keep the best weights; logged metrics are nats per example.

    Args:
        model: a :class:`LatentVariableModel`.
        num_samples: latent draws per example and step (their ELBO estimates are averaged).
        anneal_steps, anneal_start: the KL warm-up (0 steps: ``beta = 1``).
        max_rows: decoder rows per pass (see :func:`bound_terms`).
    """

    score_name = "neg_elbo"

    def __init__(self, model: LatentVariableModel, num_samples: int = 1, anneal_steps: int = 0,
                 anneal_start: float = 0.01, max_rows: int = MAX_ROWS):
        super().__init__()
        check_latent_model(model, type(self).__name__)
        if not 0.0 < anneal_start <= 1.0:
            raise ValueError(f"{type(self).__name__}: anneal_start must be in (0, 1], got "
                             f"{anneal_start}")
        self.model = model
        self.num_samples = num_samples
        self.anneal_steps = anneal_steps
        self.anneal_start = anneal_start
        self.max_rows = max_rows

    def beta(self) -> float:
        return annealed_beta(self.step, self.anneal_steps, self.anneal_start)

    def forward(self, batch: dict) -> TaskOutput:
        x = batch["x"]
        terms = bound_terms(self.model, x, self.num_samples, self.max_rows)
        reconstruction, kl = terms.reconstruction().mean(), terms.kl().mean()
        beta = self.beta()
        loss = -(reconstruction - beta * kl) / x[0].numel()
        metrics = {"elbo": (reconstruction - kl).detach(), "kl": kl.detach(),
                   "reconstruction": reconstruction.detach(),
                   "beta": torch.tensor(beta, device=x.device)}
        return TaskOutput(loss=loss, metrics=metrics)

    def evaluate(self, batch: dict) -> Tensor:
        return -bound_terms(self.model, batch["x"], self.num_samples, self.max_rows).elbo()

    def units(self, mean_score: float, batch: dict) -> dict[str, float]:
        return {self.score_name: mean_score, "elbo": -mean_score}


class IWAETask(Task):
    """Maximize the importance-weighted bound with ``num_samples`` draws (Burda et al. 2016);
    ``evaluate`` returns ``-IWAE_{eval_samples}`` per example, the log-likelihood estimate
    (``eval_samples=1000`` by default, drawn in chunks of ``max_rows`` decoder rows)."""

    score_name = "neg_iwae"

    def __init__(self, model: LatentVariableModel, num_samples: int = 5,
                 eval_samples: int = 1000,
                 max_rows: int = MAX_ROWS):
        super().__init__()
        check_latent_model(model, type(self).__name__)
        self.model = model
        self.num_samples = num_samples
        self.eval_samples = eval_samples
        self.max_rows = max_rows

    def forward(self, batch: dict) -> TaskOutput:
        x = batch["x"]
        terms = bound_terms(self.model, x, self.num_samples, self.max_rows)
        iwae = terms.iwae().mean()
        metrics = {"iwae": iwae.detach(), "elbo": terms.elbo().mean().detach(),
                   "kl": terms.kl().mean().detach()}
        return TaskOutput(loss=-iwae / x[0].numel(), metrics=metrics)

    def evaluate(self, batch: dict) -> Tensor:
        return -bound_terms(self.model, batch["x"], self.eval_samples, self.max_rows).iwae()

    def units(self, mean_score: float, batch: dict) -> dict[str, float]:
        return {self.score_name: mean_score, "iwae": -mean_score}
