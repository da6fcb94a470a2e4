"""Training: one engine on accelerate, typed configs, tasks, registries, run directories."""

from seqflow.train.config import Config, ConfigError, config_from_dict, load_config
from seqflow.train.engine import (
    NonFiniteLossError,
    Trainer,
    TrainingInterrupted,
    TrainResult,
    train,
)
from seqflow.train.models import build_flow
from seqflow.train.objectives import LikelihoodTask, Task, TaskOutput

__all__ = [
    "Config",
    "ConfigError",
    "LikelihoodTask",
    "NonFiniteLossError",
    "Task",
    "TaskOutput",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "build_flow",
    "config_from_dict",
    "load_config",
    "train",
]
