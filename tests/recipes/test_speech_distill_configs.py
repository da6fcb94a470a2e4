"""The speech distillation recipes: each student config pairs with its teacher config."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqflow.train.config import load_config
from seqflow.train.objectives.teacher import check_teacher_data

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "speech" / "configs"


@pytest.mark.parametrize("student, teacher", [("student_cpu.yaml", "teacher_cpu.yaml"),
                                              ("student_demo.yaml", "teacher_demo.yaml"),
                                              ("student_lpc_cpu.yaml", "teacher_lpc_cpu.yaml")])
def test_student_configs_fit_their_teachers(student, teacher):
    s, t = load_config(CONFIGS / student), load_config(CONFIGS / teacher)
    assert s.train.task == "distill" and s.model.kind == "sequence_iaf"
    assert t.model.kind == "sequence_maf" and t.train.task == "likelihood"
    assert Path(s.train.distill.teacher).name == Path(teacher).stem  # runs/<teacher config>
    check_teacher_data(t, s, teacher)  # raises on any audio or log-mel difference
    # the same file split: same corpus, fractions and seed
    for key in ("path", "val_fraction", "test_fraction", "seed"):
        assert getattr(s.data, key) == getattr(t.data, key)
    assert s.model.linear_prediction == t.model.linear_prediction


def test_filter_configs_build_the_filter_on_the_data_side_with_per_step_gaussians():
    from seqflow.train.models import build_flow
    from seqflow.transforms import LinearPrediction, check_gaussian_steps

    for name, inverse in (("teacher_lpc_cpu.yaml", False), ("student_lpc_cpu.yaml", True)):
        cfg = load_config(CONFIGS / name)
        assert cfg.model.linear_prediction.order == 16 and cfg.model.input_scale == 1.0
        flow = build_flow(cfg.model, cfg.data.mel)
        assert isinstance(flow.transform[0], LinearPrediction)
        check_gaussian_steps(flow.transform, inverse)  # the closed-form KL stays available
