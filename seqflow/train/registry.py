"""The registries that config validation reads: model kinds, tasks and data sources."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from seqflow.train.config import Config
from seqflow.train.datasets import DATA_SOURCES
from seqflow.train.models import MODEL_KINDS
from seqflow.train.objectives import LikelihoodTask, MaskedLikelihoodTask, Task


def _likelihood(flow: nn.Module, cfg: Config) -> Task:
    return LikelihoodTask(flow)


def _masked_likelihood(flow: nn.Module, cfg: Config) -> Task:
    return MaskedLikelihoodTask(flow)


TASKS: dict[str, Callable[[nn.Module, Config], Task]] = {
    "likelihood": _likelihood,
    "masked_likelihood": _masked_likelihood,
}

__all__ = ["DATA_SOURCES", "MODEL_KINDS", "TASKS", "build_task"]


def build_task(flow: nn.Module, cfg: Config) -> Task:
    """The configured task around ``flow``."""
    return TASKS[cfg.train.task](flow, cfg)
