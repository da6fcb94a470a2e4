"""Variational inference tasks: maximize the ELBO (with KL annealing) or the importance-weighted
bound of a :class:`~seqflow.distributions.LatentVariableModel`; the bounds themselves, in nats
per example, are :func:`seqflow.distributions.latent.bound_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqflow.distributions.latent import (
    MAX_ROWS,
    LatentVariableModel,
    bound_terms,
    check_latent_model,
)
from seqflow.train.objectives.anneal import annealed_beta
from seqflow.train.objectives.base import Task, TaskOutput


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
