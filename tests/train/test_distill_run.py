"""A distillation run end to end on tiny written wav files: a teacher run, a student trained
against it through the engine (the teacher's files untouched), ``seqflow eval`` on the student."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from seqflow.cli import main as cli
from seqflow.speech.distill_eval import is_distill_run
from seqflow.train.config import ConfigError, config_from_dict
from seqflow.train.engine import train
from seqflow.train.registry import build_task
from seqflow.train.run_dir import load_run
from tests.train.test_audio_source import config, write_corpus

RESOLUTIONS = "128,32,128;256,64,256"


def student_config(corpus, teacher, **mel):
    teacher_cfg = config(corpus)
    raw = {
        "model": {**{k: v for k, v in vars(teacher_cfg.model).items()
                     if k not in ("cond_channels", "upsample_factor")},  # derived from the mel
                  "kind": "sequence_iaf", "steps": 2},
        "data": {**vars(teacher_cfg.data), "mel": {**teacher_cfg.data.mel.to_dict(), **mel}},
        "train": {**vars(teacher_cfg.train), "task": "distill", "max_steps": 3,
                  "distill": {"teacher": str(teacher), "stft_resolutions": RESOLUTIONS}},
    }
    return config_from_dict(raw)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # about 11 s, most of it pYIN's first call
def test_student_trains_against_a_frozen_teacher_run_and_evaluates(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", 10)
    teacher = tmp_path / "teacher"
    train(config(corpus, max_steps=3), teacher)
    weights = teacher / "best" / "weights.safetensors"
    before = digest(weights)

    student = tmp_path / "student"
    result = train(student_config(corpus, teacher), student)
    assert result.step == 3 and digest(weights) == before
    log = [json.loads(line) for line in (student / "train_log.jsonl").read_text().splitlines()]
    trained = [r for r in log if "kl" in r]
    assert trained and {"kl", "kl_mc", "reg", "stft", "teacher_ll",
                        "student_entropy"} <= set(trained[-1])
    val = [r for r in log if "val_kl" in r]
    assert val and {"val_loss", "val_teacher_ll", "val_stft"} <= set(val[-1])

    assert is_distill_run(student) and not is_distill_run(teacher)
    capsys.readouterr()
    assert cli(["eval", str(student)]) == 0
    assert "teacher LL of student samples" in capsys.readouterr().out
    metrics = json.loads((student / "metrics_test.json").read_text())
    files = json.loads((student / "per_file_test.json").read_text())["files"]
    assert metrics["utterances"] == len(files) == 2
    for f in files:  # the Monte Carlo KL is log q - log p of the same sample
        assert f["kl_mc"] == pytest.approx(f["student_ll"] - f["teacher_ll"], abs=1e-5)
        assert math.isfinite(f["mr_stft"]) and f["mr_stft"] > 0 and f["mcd_db"] > 0
        assert f["lsd_db"] > 0 and f["rms_ratio"] > 0 and "stft" not in f
    samples = sum(f["samples"] for f in files)
    assert metrics["kl"] == pytest.approx(sum(f["kl"] * f["samples"] for f in files) / samples)

    # the student run loads its teacher frozen, and refuses one with other features
    flow, cfg, _ = load_run(student)
    task = build_task(flow, cfg)
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert not task.teacher.training
    assert all(not name.startswith("teacher") for name, _ in task.named_parameters())
    with pytest.raises(ConfigError, match="data.mel.n_mels=16 but this run has "
                                          "data.mel.n_mels=8"):
        build_task(flow, student_config(corpus, teacher, n_mels=8))
