"""Shared helpers of the training tests: a tiny config and weight comparison."""

from __future__ import annotations

from pathlib import Path

import yaml
from safetensors.torch import load_file

from seqflow.train.config import Config, config_from_dict

TINY = {
    "model": {"kind": "realnvp", "steps": 2, "hidden_features": 16},
    "data": {"num_samples": 1280, "val_fraction": 0.1, "test_fraction": 0.1},
    "train": {
        "max_steps": 30, "batch_size": 32, "lr": 3e-3, "warmup_steps": 3, "ema_decay": 0.9,
        "checkpoint_every": 10, "keep_checkpoints": 3, "eval_every": 10, "log_every": 5,
        "log_with": "none", "progress": False, "cpu_threads": 1,
    },
}


def tiny_raw(**train) -> dict:
    return {**TINY, "train": {**TINY["train"], **train}}


def tiny_config(**train) -> Config:
    return config_from_dict(tiny_raw(**train))


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def max_weight_diff(a: Path, b: Path) -> float:
    """Largest absolute difference between two safetensors files with the same keys."""
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    return max((x[k].double() - y[k].double()).abs().max().item() for k in x if x[k].numel())
