"""A mel-conditioned sequence MAF trained from YAML through ``seqflow train``: SIGKILL resume
to identical weights, then ``seqflow eval``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from seqflow.data.toy_audio import ToyAudio
from seqflow.train.batches import collate
from seqflow.train.config import config_from_dict
from seqflow.train.datasets import build_splits

TINY_AUDIO = {
    "model": {"kind": "sequence_maf", "channels": 1, "steps": 2, "blocks": 3,
              "residual_channels": 8, "skip_channels": 8},
    "data": {"source": "toy_audio", "num_samples": 40, "segment_length": 512,
             "mel": {"hop_length": 64, "n_mels": 8}, "val_fraction": 0.1,
             "test_fraction": 0.1},
    "train": {"max_steps": 24, "batch_size": 4, "lr": 3e-3, "checkpoint_every": 4,
              "eval_every": 8, "log_every": 4, "log_with": "none", "progress": False,
              "cpu_threads": 1, "keep_checkpoints": 10},
}


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "seqflow", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_toy_audio_items_have_their_log_mel_as_context():
    cfg = config_from_dict(TINY_AUDIO)
    splits = build_splits(cfg)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [32, 4, 4]
    batch = collate([splits["train"][i] for i in range(3)])
    assert batch["x"].shape == (3, 1, 512) and batch["context"].shape == (3, 8, 8)
    again = ToyAudio(32, 512, 64, 8)[1]
    assert torch.equal(again["x"], splits["train"][1]["x"])  # a pure function of the index
    assert splits["val"][0]["index"] == 32  # disjoint clip ranges per split
    assert not torch.equal(splits["val"][0]["x"], splits["train"][0]["x"])


@pytest.mark.slow
def test_mel_conditioned_sequence_maf_trains_resumes_after_sigkill_and_evaluates(tmp_path):
    config = tmp_path / "audio.yaml"
    config.write_text(yaml.safe_dump(TINY_AUDIO))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    done = _cli("train", str(config), "--out", str(reference))
    assert done.wait(timeout=600) == 0, done.stderr.read()

    run = _cli("train", str(config), "--out", str(killed))
    deadline = time.time() + 300
    while not list((killed / "checkpoints").glob("step_00000012")):
        assert run.poll() is None and time.time() < deadline, run.stderr.read()
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    resumed = _cli("train", str(config), "--out", str(killed))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resumed from step_" in out
    a = load_file(str(reference / "final" / "weights.safetensors"))
    b = load_file(str(killed / "final" / "weights.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0  # bit-identical

    evaluated = _cli("eval", str(killed), "--split", "test")
    out, err = evaluated.communicate(timeout=300)
    assert evaluated.returncode == 0, err
    metrics = json.loads(out)
    assert metrics["items"] == 4 and metrics["split"] == "test"
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nats_per_dim"] / 0.6931471805599453)
    # It learned something: clearly below the untrained flow (the identity onto N(0, 1)).
    test = collate([build_splits(config_from_dict(TINY_AUDIO))["test"][i] for i in range(4)])
    untrained = float(-torch.distributions.Normal(0.0, 1.0).log_prob(test["x"]).mean())
    assert metrics["nats_per_dim"] < untrained - 0.2, (metrics, untrained)
    log = [json.loads(line) for line in Path(killed / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val_nll" in r] == [8, 16, 24]
