"""Load a finished run as a frozen distillation teacher, checking it fits the student's data."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from seqflow.train.config import Config, ConfigError, load_config
from seqflow.train.run_dir import CONFIG_FILE, load_run

# Settings that define the teacher's inputs: audio rate and the log-mel it reads.
FEATURE_KEYS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max",
                "log_floor")


def check_teacher_data(teacher: Config, student: Config, where: str) -> None:
    """Raise a one-line :class:`ConfigError` when the teacher's recorded audio/feature settings
    or local-feature model settings differ from the student's."""
    for key in FEATURE_KEYS:
        ours, theirs = getattr(student.data, key), getattr(teacher.data, key)
        if ours != theirs:
            raise ConfigError(f"train.distill_teacher: {where} was trained with data.{key}="
                              f"{theirs!r} but this run has data.{key}={ours!r}")
    for key in ("cond_channels", "upsample_factor", "channels"):
        ours, theirs = getattr(student.model, key), getattr(teacher.model, key)
        if ours != theirs:
            raise ConfigError(f"train.distill_teacher: {where} has model.{key}={theirs!r} but "
                              f"the student has model.{key}={ours!r}")


def load_teacher(cfg: Config, weights: str = "auto") -> nn.Module:
    """The flow of the run ``cfg.train.distill_teacher`` (best weights first), in eval mode with
    gradients off; refused when its data settings differ from ``cfg`` (:func:`check_teacher_data`).
    """
    root = Path(cfg.train.distill_teacher)
    if not (root / CONFIG_FILE).is_file():
        raise ConfigError(f"train.distill_teacher: {root} is not a run directory (no "
                          f"{CONFIG_FILE})")
    check_teacher_data(load_config(root / CONFIG_FILE), cfg, str(root))
    flow, _, _ = load_run(root, weights)
    return flow.eval().requires_grad_(False)
