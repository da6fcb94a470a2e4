"""Load a finished run as a frozen distillation teacher, checking it fits the student's data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from seqflow.train.config import Config, ConfigError, load_config
from seqflow.train.run_dir import CONFIG_FILE, load_run


def check_teacher_data(teacher: Config, student: Config, where: str) -> None:
    """Raise a one-line :class:`ConfigError` when the teacher's recorded audio/feature settings
    or local-feature model settings differ from the student's."""
    for f in dataclasses.fields(student.data.mel):  # the audio rate and the log-mel it reads
        ours, theirs = getattr(student.data.mel, f.name), getattr(teacher.data.mel, f.name)
        if ours != theirs:
            raise ConfigError(f"train.distill.teacher: {where} was trained with data.mel."
                              f"{f.name}={theirs!r} but this run has data.mel.{f.name}={ours!r}")
    for key in ("cond_channels", "upsample_factor", "channels"):
        ours, theirs = getattr(student.model, key), getattr(teacher.model, key)
        if ours != theirs:
            raise ConfigError(f"train.distill.teacher: {where} has model.{key}={theirs!r} but "
                              f"the student has model.{key}={ours!r}")


def load_teacher(cfg: Config, weights: str = "auto") -> nn.Module:
    """The flow of the run ``cfg.train.distill.teacher`` (best weights first), in eval mode with
    gradients off; refused when its data settings differ from ``cfg`` (:func:`check_teacher_data`).
    """
    root = Path(cfg.train.distill.teacher)
    if not (root / CONFIG_FILE).is_file():
        raise ConfigError(f"train.distill.teacher: {root} is not a run directory (no "
                          f"{CONFIG_FILE})")
    check_teacher_data(load_config(root / CONFIG_FILE), cfg, str(root))
    flow, _, _ = load_run(root, weights)
    return flow.eval().requires_grad_(False)
