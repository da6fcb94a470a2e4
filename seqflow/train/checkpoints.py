"""Atomic, verifiable checkpoint directories.

A checkpoint is a directory written under a temporary name, sealed with ``MANIFEST.json`` (the
size and sha256 of every file) and then renamed into place, so a reader never sees a half-written
checkpoint under its final name. :func:`find_resumable` verifies manifests newest first and falls
back past truncated or corrupt checkpoints with a warning that names the bad file.

Nothing here unpickles: tensors are read with safetensors, everything else is JSON.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MANIFEST = "MANIFEST.json"
STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint or run directory that cannot be used."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_run_dir(run_dir: Path) -> IO:
    """Hold an exclusive lock on ``run_dir/.lock`` (released when the process dies).

    Two trainings writing one run directory would corrupt each other's checkpoints.
    """
    handle = (run_dir / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise CheckpointError(
            f"{run_dir} is in use by another seqflow train process; wait for it or choose "
            "another --out"
        ) from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save a state dict as safetensors (contiguous CPU copies, shared storage untied)."""
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()},
              str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def seal(directory: Path) -> None:
    """Write the manifest of every file below ``directory`` (fsyncing each file first)."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        _fsync(path)
        files[path.relative_to(directory).as_posix()] = {
            "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    write_json_atomic({"format": 1, "files": files}, directory / MANIFEST)


def verify(directory: Path) -> str | None:
    """None when ``directory`` matches its manifest, else a message naming the bad file."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return f"{manifest} is missing"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError) as err:
        return f"{manifest} is unreadable ({type(err).__name__})"
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != expected["bytes"]:
            return f"{path} is truncated or extended ({size} bytes, expected {expected['bytes']})"
        if sha256_file(path) != expected["sha256"]:
            return f"{path} is corrupt (sha256 mismatch)"
    return None


def commit(tmp: Path, final: Path) -> None:
    """Rename a sealed temporary directory to ``final``, replacing an existing one."""
    if final.exists():
        trash = final.with_name(f".trash-{final.name}")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)


def step_dirs(root: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step_NNNNNNNN`` directory below ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return sorted(found)


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def find_resumable(root: Path, warn: bool = True) -> Path | None:
    """The newest checkpoint that passes :func:`verify`, warning about each one skipped."""
    candidates = list(reversed(step_dirs(root)))
    for i, (_, path) in enumerate(candidates):
        problem = verify(path)
        if problem is None:
            return path
        if warn:
            fallback = candidates[i + 1][1].name if i + 1 < len(candidates) else "a fresh start"
            warnings.warn(f"checkpoint {path.name} is unusable: {problem}; trying {fallback}",
                          stacklevel=2)
    return None


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step directories and stale temporary ones."""
    for _, path in step_dirs(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def clear_temporaries(root: Path) -> None:
    """Remove leftovers (``.tmp-*``, ``.trash-*``) of a run killed while writing."""
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


def write_weights_dir(final: Path, weights: dict[str, torch.Tensor], info: dict) -> None:
    """Atomically write ``final/{weights.safetensors, info.json, MANIFEST.json}``."""
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(weights, tmp / "weights.safetensors")
    write_json_atomic(info, tmp / "info.json")
    seal(tmp)
    commit(tmp, final)


def read_weights_dir(directory: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Verify and read a directory written by :func:`write_weights_dir`."""
    problem = verify(directory)
    if problem is not None:
        raise CheckpointError(f"cannot use {directory}: {problem}")
    info = json.loads((directory / "info.json").read_text())
    return load_tensors(directory / "weights.safetensors"), info


def save_rng(directory: Path, rank: int) -> None:
    """Write this process's Python, NumPy, torch (and CUDA) RNG states without pickle."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_keys.copy())}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = state
    version, internal, gauss = random.getstate()
    save_tensors(tensors, directory / f"rng_{rank}.safetensors")
    write_json_atomic({"python": [version, list(internal), gauss],
                       "numpy": [np_name, int(np_pos), int(np_has_gauss), float(np_gauss)]},
                      directory / f"rng_{rank}.json")


def load_rng(directory: Path, rank: int) -> None:
    """Restore the RNG states written by :func:`save_rng`."""
    tensors = load_tensors(directory / f"rng_{rank}.safetensors")
    meta = json.loads((directory / f"rng_{rank}.json").read_text())
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    np_name, np_pos, np_has_gauss, np_gauss = meta["numpy"]
    np.random.set_state((np_name, tensors["numpy_keys"].numpy(), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
