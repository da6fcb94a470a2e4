"""The speech distillation recipes: each student config pairs with its teacher config."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqflow.train.config import load_config
from seqflow.train.objectives.teacher import check_teacher_data

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "speech" / "configs"


@pytest.mark.parametrize("student, teacher", [("student_cpu.yaml", "teacher_cpu.yaml"),
                                              ("student_demo.yaml", "teacher_demo.yaml")])
def test_student_configs_fit_their_teachers(student, teacher):
    s, t = load_config(CONFIGS / student), load_config(CONFIGS / teacher)
    assert s.train.task == "distill" and s.model.kind == "sequence_iaf"
    assert t.model.kind == "sequence_maf" and t.train.task == "likelihood"
    assert Path(s.train.distill.teacher).name == Path(teacher).stem  # runs/<teacher config>
    check_teacher_data(t, s, teacher)  # raises on any audio or log-mel difference
    # the same file split: same corpus, fractions and seed
    for key in ("path", "val_fraction", "test_fraction", "seed"):
        assert getattr(s.data, key) == getattr(t.data, key)
