"""Training: one engine on accelerate, typed configs, tasks, registries, run directories.

This package's public API is what recipes, tools and the domain packages
(:mod:`seqflow.speech`, :mod:`seqflow.forecasting`) import; its modules are internal.
"""

from seqflow.data.sources import write_sample_chunks
from seqflow.train.audio_data import recorded_split, utterances
from seqflow.train.batches import RowDataset
from seqflow.train.checkpoints import CheckpointError, write_json_atomic
from seqflow.train.config import (
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    load_sections,
    read_config_file,
)
from seqflow.train.engine import (
    NonFiniteLossError,
    Trainer,
    TrainingInterrupted,
    TrainResult,
    train,
)
from seqflow.train.inference import evaluate_run, sample_chunks
from seqflow.train.models import build_flow
from seqflow.train.objectives import (
    DistillTask,
    ELBOTask,
    IWAETask,
    LikelihoodTask,
    MaskedLikelihoodTask,
    ReverseKLTask,
    SampleSlots,
    Task,
    TaskOutput,
    log_normalizer_on_grid,
    reverse_kl,
)
from seqflow.train.registry import build_task, check_config
from seqflow.train.run_dir import (
    finished_run,
    load_run,
    load_weights,
    provenance,
    reusable_result,
)

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "DistillTask",
    "ELBOTask",
    "IWAETask",
    "LikelihoodTask",
    "MaskedLikelihoodTask",
    "NonFiniteLossError",
    "ReverseKLTask",
    "RowDataset",
    "SampleSlots",
    "Task",
    "TaskOutput",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "build_flow",
    "build_task",
    "check_config",
    "config_from_dict",
    "evaluate_run",
    "finished_run",
    "load_config",
    "load_run",
    "load_sections",
    "load_weights",
    "provenance",
    "read_config_file",
    "reusable_result",
    "log_normalizer_on_grid",
    "recorded_split",
    "reverse_kl",
    "sample_chunks",
    "train",
    "utterances",
    "write_json_atomic",
    "write_sample_chunks",
]
