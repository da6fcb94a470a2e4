"""Checkpoint faults on real files: lost manifests, corrupt newest checkpoints, a full disk.

Unusable checkpoints are moved to ``checkpoints/quarantine/`` (never deleted), "newest" and
pruning count validated checkpoints only, and a write that runs out of space raises one
:class:`CheckpointError` line naming the file while the previous checkpoint stays intact. The
disk-full cases run in subprocesses: one under ``RLIMIT_FSIZE`` (the kernel answers ``EFBIG``),
one on a 256 KiB tmpfs in a private mount namespace (the kernel answers ``ENOSPC``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seqflow
from seqflow.train import checkpoints as ckpt
from seqflow.train.config import config_from_dict
from seqflow.train.engine import train

REPO = Path(seqflow.__file__).resolve().parents[1]


def _sealed(root: Path, step: int, value: float = 0.0) -> Path:
    directory = root / ckpt.step_dir_name(step)
    directory.mkdir(parents=True)
    ckpt.save_tensors({"w": torch.full((64,), value)}, directory / "model.safetensors")
    (directory / "trainer_state.json").write_text(json.dumps({"step": step}))
    ckpt.seal(directory)
    return directory


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _quarantined(root: Path) -> dict[str, Path]:
    """``{step directory name: its quarantined path}`` for everything under quarantine/."""
    found = {}
    for path in (root / "quarantine").iterdir():
        name = path.name.split("-", 1)[0]
        assert name not in found, f"{name} quarantined twice: {found[name]} and {path}"
        found[name] = path
    return found


def test_newest_checkpoints_without_manifests_are_quarantined_intact(tmp_path):
    root = tmp_path / "checkpoints"
    good = _sealed(root, 10)
    stale = [_sealed(root, 30), _sealed(root, 40)]
    for directory in stale:
        (directory / ckpt.MANIFEST).unlink()
    before = {d.name: _snapshot(d) for d in stale}

    with pytest.warns(UserWarning) as caught:
        assert ckpt.find_resumable(root) == good
    text = " | ".join(str(w.message) for w in caught)
    assert "step_00000040 is unusable" in text and "MANIFEST.json is missing" in text
    assert "quarantine" in text

    assert ckpt.step_dirs(root) == [(10, good)]
    moved = _quarantined(root)
    assert sorted(moved) == sorted(before)
    for name, path in moved.items():
        assert _snapshot(path) == before[name]  # renamed, not deleted or rewritten
    assert ckpt.verify(good) is None


def test_pruning_counts_only_validated_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        _sealed(root, step)
    stale = _sealed(root, 50)  # a higher step number than anything the restarted run wrote
    data = (stale / "model.safetensors").read_bytes()
    (stale / "model.safetensors").write_bytes(data[: len(data) // 2])

    with pytest.warns(UserWarning, match=r"step_00000050 is unusable: .*truncated"):
        ckpt.prune(root, keep=2)
    assert [s for s, _ in ckpt.step_dirs(root)] == [20, 30]
    assert all(ckpt.verify(path) is None for _, path in ckpt.step_dirs(root))
    moved = _quarantined(root)
    assert list(moved) == ["step_00000050"]
    assert (moved["step_00000050"] / "model.safetensors").read_bytes() == data[: len(data) // 2]


TINY = {
    "model": {"kind": "realnvp", "steps": 2, "hidden_features": 16},
    "data": {"num_samples": 640, "val_fraction": 0.1, "test_fraction": 0.1},
    "train": {"max_steps": 30, "batch_size": 32, "lr": 3e-3, "checkpoint_every": 10,
              "keep_checkpoints": 2, "eval_every": 10, "log_every": 5, "log_with": "none",
              "progress": False, "cpu_threads": 1},
}


def test_restart_after_lost_manifests_keeps_its_new_checkpoints(tmp_path):
    """Lose every manifest of a 30-step run, rerun to step 20: steps 10 and 20 must survive."""
    run = tmp_path / "run"
    train(config_from_dict(TINY), run)
    root = run / "checkpoints"
    assert [s for s, _ in ckpt.step_dirs(root)] == [20, 30]
    for _, directory in ckpt.step_dirs(root):
        (directory / ckpt.MANIFEST).unlink()

    shorter = {**TINY, "train": {**TINY["train"], "max_steps": 20}}
    with pytest.warns(UserWarning, match="unusable"):
        result = train(config_from_dict(shorter), run)
    assert result.resumed_from is None and result.step == 20

    assert [s for s, _ in ckpt.step_dirs(root)] == [10, 20]
    for step, directory in ckpt.step_dirs(root):
        assert ckpt.verify(directory) is None
        assert json.loads((directory / "trainer_state.json").read_text())["step"] == step
    assert sorted(_quarantined(root)) == ["step_00000020", "step_00000030"]
    assert ckpt.find_resumable(root) == root / "step_00000020"


def test_interrupted_commit_restores_the_previous_directory(tmp_path):
    """A kill between commit's two renames leaves ``.trash-best`` and no ``best``."""
    best = tmp_path / "best"
    ckpt.write_weights_dir(best, {"w": torch.arange(8.0)}, {"step": 1})
    best.rename(tmp_path / ".trash-best")
    (tmp_path / ".tmp-best").mkdir()
    (tmp_path / ".tmp-best" / "weights.safetensors").write_bytes(b"half")

    ckpt.clear_temporaries(tmp_path)
    weights, info = ckpt.read_weights_dir(best)
    assert torch.equal(weights["w"], torch.arange(8.0)) and info == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


_FULL_DISK_SCRIPT = r"""
import json, resource, signal, sys
from pathlib import Path
import torch
from seqflow.train import checkpoints as ckpt

out, limit = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

def attempt(write):
    try:
        write()
    except Exception as err:
        return {"type": type(err).__name__, "message": str(err)}
    return {"type": None, "message": ""}

print(json.dumps({
    "weights": attempt(lambda: ckpt.write_weights_dir(
        out / "best", {"w": torch.ones(100_000)}, {"step": 2})),
    "json": attempt(lambda: ckpt.write_json_atomic(
        {"rows": list(range(50_000))}, out / "metrics.json")),
    "seal": attempt(lambda: ckpt.seal(out / "checkpoints" / ".tmp-step_00000020")),
}))
"""


def _run_python(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, **kwargs)


def _assert_disk_full(report: dict, name: str) -> None:
    assert report["type"] == "CheckpointError", report
    message = report["message"]
    assert "\n" not in message and "no space left on device" in message, message
    assert name in message, message


def test_file_size_limit_leaves_the_previous_checkpoint_intact(tmp_path):
    """Writers under RLIMIT_FSIZE (EFBIG): one-line error, temporaries gone, old files valid."""
    ckpt.write_weights_dir(tmp_path / "best", {"w": torch.arange(1000.0)}, {"step": 1})
    ckpt.write_json_atomic({"nll": 1.5}, tmp_path / "metrics.json")
    root = tmp_path / "checkpoints"
    good = _sealed(root, 10, value=3.0)
    pending = root / ".tmp-step_00000020"
    pending.mkdir()
    for i in range(800):  # small files whose manifest outgrows the limit
        (pending / f"part_{i:03d}.json").write_text("{}")

    proc = _run_python([sys.executable, "-c", _FULL_DISK_SCRIPT, str(tmp_path), str(64 * 1024)])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)

    _assert_disk_full(report["weights"], "weights.safetensors")
    weights, info = ckpt.read_weights_dir(tmp_path / "best")
    assert torch.equal(weights["w"], torch.arange(1000.0)) and info == {"step": 1}
    assert not (tmp_path / ".tmp-best").exists()

    _assert_disk_full(report["json"], str(tmp_path / "metrics.json"))
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"nll": 1.5}
    assert not (tmp_path / ".metrics.json.tmp").exists()

    _assert_disk_full(report["seal"], ckpt.MANIFEST)
    assert not (pending / ckpt.MANIFEST).exists()
    assert not (pending / f".{ckpt.MANIFEST}.tmp").exists()
    assert ckpt.find_resumable(root) == good and ckpt.verify(good) is None


_TMPFS_SCRIPT = r"""
import json, os, sys
from pathlib import Path
import torch
from seqflow.train import checkpoints as ckpt

out = Path(sys.argv[1])
ckpt.write_weights_dir(out / "best", {"w": torch.arange(1000.0)}, {"step": 1})
try:
    ckpt.write_weights_dir(out / "best", {"w": torch.ones(200_000)}, {"step": 2})
    error = {"type": None, "message": ""}
except Exception as err:
    error = {"type": type(err).__name__, "message": str(err)}
weights, info = ckpt.read_weights_dir(out / "best")
print(json.dumps({"error": error, "info": info, "files": sorted(os.listdir(out)),
                  "same": bool(torch.equal(weights["w"], torch.arange(1000.0)))}))
"""


def test_full_tmpfs_leaves_the_previous_checkpoint_intact(tmp_path):
    """A 256 KiB tmpfs (private mount namespace) fills up: ENOSPC, old ``best`` still valid."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare to mount a private tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    shell = 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" -c "$3" "$1"'
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user and mount namespaces are not available here")
    proc = _run_python(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", shell,
                        "sh", str(mount), sys.executable, _TMPFS_SCRIPT])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    _assert_disk_full(report["error"], "weights.safetensors")
    assert "EFBIG" not in report["error"]["message"]  # a genuine ENOSPC
    assert report["same"] and report["info"] == {"step": 1}
    assert report["files"] == ["best"]


def test_only_the_main_process_moves_unusable_checkpoints(tmp_path, monkeypatch):
    """Ranks other than 0 of a launch skip unusable checkpoints but leave them for rank 0."""
    root = tmp_path / "checkpoints"
    good, stale = _sealed(root, 10), _sealed(root, 20)
    (stale / ckpt.MANIFEST).unlink()
    monkeypatch.setenv("RANK", "1")
    with pytest.warns(UserWarning, match=r"step_00000020 is unusable: .*left in place"):
        assert ckpt.find_resumable(root) == good
    assert ckpt.step_dirs(root) == [(10, good), (20, stale)]
    monkeypatch.setenv("RANK", "0")
    with pytest.warns(UserWarning, match=r"step_00000020 is unusable: .*moved to .*quarantine"):
        assert ckpt.find_resumable(root) == good
    assert ckpt.step_dirs(root) == [(10, good)]
    assert list(_quarantined(root)) == ["step_00000020"]
