"""Training tasks: what the engine optimizes (likelihood; distillation and ELBO build on it)."""

from seqflow.train.objectives.base import Task, TaskOutput, nll_units
from seqflow.train.objectives.likelihood import LikelihoodTask, log_prob_of
from seqflow.train.objectives.masked_likelihood import MaskedLikelihoodTask, elementwise_log_prob

__all__ = ["LikelihoodTask", "MaskedLikelihoodTask", "Task", "TaskOutput",
           "elementwise_log_prob", "log_prob_of", "nll_units"]
