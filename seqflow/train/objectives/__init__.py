"""Training tasks: what the engine optimizes (likelihood; ELBO and IWAE of latent-variable
models; reverse KL to unnormalized targets; probability density distillation)."""

from seqflow.train.objectives.anneal import annealed_beta
from seqflow.train.objectives.base import Task, TaskOutput, nll_units
from seqflow.train.objectives.distill import DistillTask
from seqflow.train.objectives.elbo import ELBOTask, IWAETask
from seqflow.train.objectives.likelihood import LikelihoodTask, log_prob_of
from seqflow.train.objectives.masked_likelihood import MaskedLikelihoodTask, elementwise_log_prob
from seqflow.train.objectives.reverse_kl import (
    ReverseKLTask,
    SampleSlots,
    log_normalizer_on_grid,
    reverse_kl,
)

__all__ = [
    "DistillTask",
    "ELBOTask",
    "IWAETask",
    "LikelihoodTask",
    "MaskedLikelihoodTask",
    "ReverseKLTask",
    "SampleSlots",
    "Task",
    "TaskOutput",
    "annealed_beta",
    "elementwise_log_prob",
    "log_normalizer_on_grid",
    "log_prob_of",
    "nll_units",
    "reverse_kl",
]
