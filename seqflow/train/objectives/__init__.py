"""Training tasks: what the engine optimizes (likelihood; ELBO and IWAE of latent-variable
models; distillation builds on them)."""

from seqflow.train.objectives.base import Task, TaskOutput, nll_units
from seqflow.train.objectives.elbo import (
    BoundTerms,
    ELBOTask,
    IWAETask,
    LatentVariableModel,
    annealed_beta,
    bound_terms,
    variational_bounds,
)
from seqflow.train.objectives.likelihood import LikelihoodTask, log_prob_of

__all__ = [
    "BoundTerms",
    "ELBOTask",
    "IWAETask",
    "LatentVariableModel",
    "LikelihoodTask",
    "Task",
    "TaskOutput",
    "annealed_beta",
    "bound_terms",
    "log_prob_of",
    "nll_units",
    "variational_bounds",
]
