"""Checkpoints: atomic sealed directories, corruption detection, fallback, no unpickling."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from train_cases import max_weight_diff, tiny_config

from seqflow.train import checkpoints as ckpt
from seqflow.train.engine import train


def _sealed(tmp_path, name="step_00000001"):
    d = tmp_path / name
    d.mkdir()
    ckpt.save_tensors({"w": torch.arange(100.0)}, d / "model.safetensors")
    (d / "state.json").write_text("{}")
    ckpt.seal(d)
    return d


def test_verify_detects_truncation_flips_and_missing_files(tmp_path):
    d = _sealed(tmp_path)
    assert ckpt.verify(d) is None
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[:-10])
    assert "model.safetensors is truncated" in ckpt.verify(d)
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(flipped))
    assert "model.safetensors is corrupt (sha256 mismatch)" in ckpt.verify(d)
    (d / "model.safetensors").unlink()
    assert "model.safetensors is missing" in ckpt.verify(d)
    (d / ckpt.MANIFEST).write_text("{not json")
    assert "MANIFEST.json is unreadable" in ckpt.verify(d)
    (d / ckpt.MANIFEST).unlink()
    assert "MANIFEST.json is missing" in ckpt.verify(d)


def test_find_resumable_falls_back_with_a_warning_naming_the_file(tmp_path):
    old, new = _sealed(tmp_path, "step_00000001"), _sealed(tmp_path, "step_00000002")
    assert ckpt.find_resumable(tmp_path) == new
    (new / "state.json").write_text("{} ")
    with pytest.warns(UserWarning, match=r"step_00000002 is unusable: .*state.json.*step_00000001"):
        assert ckpt.find_resumable(tmp_path) == old
    shutil.rmtree(old)
    with pytest.warns(UserWarning, match="a fresh start"):
        assert ckpt.find_resumable(tmp_path) is None


def test_commit_replaces_and_prune_keeps_newest(tmp_path):
    for step in range(1, 5):
        _sealed(tmp_path, ckpt.step_dir_name(step))
    tmp = _sealed(tmp_path, ".tmp-x")
    ckpt.commit(tmp, tmp_path / ckpt.step_dir_name(4))
    assert not tmp.exists() and ckpt.verify(tmp_path / ckpt.step_dir_name(4)) is None
    ckpt.prune(tmp_path, keep=2)
    assert [s for s, _ in ckpt.step_dirs(tmp_path)] == [3, 4]


def test_run_directory_lock(tmp_path):
    held = ckpt.lock_run_dir(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="in use by another seqflow train"):
        ckpt.lock_run_dir(tmp_path)
    held.close()
    ckpt.lock_run_dir(tmp_path).close()


def test_corrupt_latest_checkpoint_falls_back_and_resumes_exactly(tmp_path):
    """Train 30 steps; truncate the step-30 weights; rerun: resume from 20, same end state."""
    run = tmp_path / "run"
    cfg = tiny_config()
    train(cfg, run)
    reference = tmp_path / "reference.safetensors"
    shutil.copy(run / "final" / "weights.safetensors", reference)
    latest = run / "checkpoints" / "step_00000030"
    data = (latest / "model.safetensors").read_bytes()
    (latest / "model.safetensors").write_bytes(data[: len(data) // 2])
    shutil.rmtree(run / "final")
    with pytest.warns(UserWarning, match=r"step_00000030 is unusable: .*model.safetensors"):
        result = train(cfg, run)
    assert result.resumed_from.name == "step_00000020"
    assert max_weight_diff(reference, run / "final" / "weights.safetensors") <= 1e-6


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    ckpt.save_rng(tmp_path, rank=0)
    first = (random.random(), np.random.rand(), torch.rand(3))
    ckpt.load_rng(tmp_path, rank=0)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


class _Exploit:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (self.sentinel.touch, ())


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    """A sealed checkpoint whose pickles would run code: refused, and no code runs."""
    run, sentinel = tmp_path / "run", tmp_path / "pwned"
    cfg = tiny_config(max_steps=10)
    train(cfg, run)
    latest = run / "checkpoints" / "step_00000010"
    # accelerate swallows RNG-pickle errors; seqflow restores RNG from its own safetensors.
    torch.save(_Exploit(sentinel), latest / "random_states_0.pkl")
    ckpt.seal(latest)
    assert train(cfg, run).resumed_from == latest
    assert not sentinel.exists()
    torch.save(_Exploit(sentinel), latest / "optimizer.bin")
    ckpt.seal(latest)  # a consistent manifest: only the unpickler can stop it now
    with pytest.raises(ckpt.CheckpointError, match="cannot load .*step_00000010.*Unpickling"):
        train(cfg, run)
    assert not sentinel.exists()
    assert json.loads((latest / "trainer_state.json").read_text())["step"] == 10
