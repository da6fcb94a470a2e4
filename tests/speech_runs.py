"""Tiny speech corpora and runs (a sequence-IAF student, a sequence-MAF teacher) for the
vocoding, ONNX export and trade-off tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from seqflow.train.config import config_from_dict
from seqflow.train.engine import train

SR = 16000
HOP = 128
N_MELS = 16


def voiced(seconds: float, seed: int) -> np.ndarray:
    """A 16 kHz vowel-like tone: harmonics of a wobbling F0 under a slow loudness envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 110 + 80 * rng.random() + 10 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 5)) + 0.02 * rng.standard_normal(t.shape)
    return 0.25 * np.sin(np.pi * t / t[-1]) * wave / 2.1


def write_corpus(root: Path, count: int = 8, seed: int = 0) -> Path:
    """``count`` wav files of 0.25 to 0.4 s in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sf.write(root / f"utt{i:02d}.wav", voiced(0.25 + 0.05 * (i % 4), seed + i), SR,
                 subtype="PCM_16")
    return root


def tiny_config(corpus: Path, kind: str):
    return config_from_dict({
        "model": {"kind": kind, "channels": 1, "steps": 2 if kind == "sequence_iaf" else 1,
                  "blocks": 2, "residual_channels": 4, "skip_channels": 4,
                  "log_scale_floor": -9.0, "input_scale": 0.1},
        "data": {"source": "audio", "path": str(corpus), "segment_length": 256,
                 "num_samples": 4, "val_items": 2, "val_fraction": 0.25, "test_fraction": 0.25,
                 "mel": {"n_fft": 512, "win_length": 512, "hop_length": HOP,
                         "n_mels": N_MELS}},
        "train": {"max_steps": 1, "batch_size": 2, "lr": 0.05, "lr_schedule": "constant",
                  "checkpoint_every": 1, "eval_every": 100, "log_every": 1, "eval_batch_size": 2,
                  "log_with": "none", "progress": False, "cpu_threads": 1},
    })


def train_tiny(corpus: Path, out: Path, kind: str = "sequence_iaf") -> Path:
    """A run of ``kind`` trained for one large step on ``corpus`` (lr 0.05: the conditioners'
    zero-initialized heads move away from the identity); returns the run directory."""
    train(tiny_config(corpus, kind), out)
    return out
