"""Training tasks: what the engine optimizes (likelihood; distillation and ELBO build on it)."""

from seqflow.train.objectives.base import Task, TaskOutput, nll_units
from seqflow.train.objectives.likelihood import LikelihoodTask, log_prob_of

__all__ = ["LikelihoodTask", "Task", "TaskOutput", "log_prob_of", "nll_units"]
