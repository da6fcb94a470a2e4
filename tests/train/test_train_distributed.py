"""A real 2-process launch (gloo on CPU) equals 1 process with twice the per-rank batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from train_cases import max_weight_diff, tiny_config, tiny_raw, write_config

from seqflow.train.engine import train

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate() -> list[str]:
    exe = Path(sys.executable).with_name("accelerate")
    return [str(exe)] if exe.exists() else [shutil.which("accelerate") or "accelerate"]


@pytest.mark.slow
def test_two_processes_match_one_process_with_double_batch(tmp_path):
    raw = tiny_raw(max_steps=20, batch_size=16, checkpoint_every=10, eval_every=10,
                   log_every=5, input_noise=0.05)
    config = write_config(tmp_path / "tiny.yaml", raw)
    two = tmp_path / "two"
    # ACCELERATE_USE_CPU + --multi_gpu starts torchrun workers on CPU with the gloo backend.
    # (In accelerate 1.x, `--cpu --num_processes 2` without an MPI hostfile starts ONE process.)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [*_accelerate(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(_free_port()), "-m", "seqflow", "train", str(config), "--out", str(two)]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "seqflow train: step 20" in done.stdout
    assert done.stdout.count("seqflow train:") == 1  # only rank 0 reports

    one = tmp_path / "one"
    train(tiny_config(**{**raw["train"], "batch_size": 32}), one)

    for name in ("final/weights.safetensors", "checkpoints/step_00000020/model.safetensors"):
        assert max_weight_diff(one / name, two / name) <= 1e-5, name
    state = json.loads((two / "checkpoints/step_00000020/trainer_state.json").read_text())
    assert state["num_processes"] == 2
    files = {p.name for p in (two / "checkpoints/step_00000020").iterdir()}
    assert {"rng_0.json", "rng_1.json"} <= files
    # Rank 0 alone writes the log: every step appears once; global batch is 2 x 16.
    records = [json.loads(line) for line in (two / "train_log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps == [5, 10, 15, 20]
    one_records = [json.loads(line) for line in (one / "train_log.jsonl").read_text().splitlines()]
    for a, b in zip(records, one_records, strict=True):
        if "loss" in a:
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
            assert a["samples_per_s"] / a["steps_per_s"] == pytest.approx(32)
        else:
            assert a["val_nll"] == pytest.approx(b["val_nll"], abs=1e-5)
