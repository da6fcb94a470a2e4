"""Training: one engine on accelerate, typed configs, checkpoints, objectives, model registry."""

from seqflow.train.config import Config, ConfigError, config_from_dict, load_config
from seqflow.train.engine import NonFiniteLossError, Trainer, TrainResult, train
from seqflow.train.models import build_flow
from seqflow.train.objectives import NLLObjective, Objective, ObjectiveOutput

__all__ = [
    "Config",
    "ConfigError",
    "NLLObjective",
    "NonFiniteLossError",
    "Objective",
    "ObjectiveOutput",
    "TrainResult",
    "Trainer",
    "build_flow",
    "config_from_dict",
    "load_config",
    "train",
]
