"""Atomic, verifiable checkpoint directories.

A checkpoint is a directory written under a temporary name, sealed with ``MANIFEST.json`` (the
size and sha256 of every file) and then renamed into place, so a reader never sees a half-written
checkpoint under its final name. :func:`find_resumable` verifies manifests newest first and falls
back past truncated or corrupt checkpoints with a warning that names the bad file.

An unusable checkpoint is never deleted: it is renamed to ``<root>/quarantine/step_N-<reason>``,
out of :func:`step_dirs`' sight, so that "newest" (for resuming) and "oldest beyond ``keep``" (for
:func:`prune`) always refer to validated checkpoints. A write that runs out of space (``ENOSPC``,
``EDQUOT``, ``EFBIG``) raises a one-line :class:`CheckpointError` naming the file, removes its
temporary and leaves the previous version in place.

Nothing here unpickles: tensors are read with safetensors, everything else is JSON.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialize_tensors

from seqflow.data.sources import sha256_file

MANIFEST = "MANIFEST.json"
STEP_DIR = re.compile(r"^step_(\d+)$")
QUARANTINE = "quarantine"
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class CheckpointError(RuntimeError):
    """A checkpoint or run directory that cannot be used."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def reporting_disk_full(path: Path) -> Iterator[None]:
    """Turn an out-of-space ``OSError`` raised while writing ``path`` into a CheckpointError.

    ``EFBIG`` (a file-size limit) and ``EDQUOT`` (a quota) are reported the same way, with the
    kernel's own wording in parentheses.
    """
    try:
        yield
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        detail = "" if err.errno == errno.ENOSPC else (
            f" ({errno.errorcode[err.errno]}: {os.strerror(err.errno)})")
        raise CheckpointError(f"cannot write {path}: no space left on device{detail}") from err


def _write_bytes_atomic(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` through ``.<name>.tmp``, fsync and ``os.replace``.

    On any failure the temporary is removed and an existing ``path`` is left as it was.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with reporting_disk_full(path):
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    except ValueError as err:  # NaN/Inf would make a file that strict JSON readers reject
        raise ValueError(f"{path}: refusing to write non-finite numbers as JSON ({err})") from None
    _write_bytes_atomic(text.encode(), path)


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save a state dict as safetensors (contiguous CPU copies, shared storage untied).

    Written through a temporary file like :func:`write_json_atomic`.
    """
    data = serialize_tensors(
        {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})
    _write_bytes_atomic(data, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def seal(directory: Path) -> None:
    """Write the manifest of every file below ``directory`` (fsyncing each file first)."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        with reporting_disk_full(path):  # delayed allocation can report ENOSPC only here
            _fsync(path)
        files[path.relative_to(directory).as_posix()] = {
            "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    write_json_atomic({"format": 1, "files": files}, directory / MANIFEST)


def _diagnose(directory: Path) -> tuple[str, str] | None:
    """None when ``directory`` matches its manifest, else ``(reason slug, message)``."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return "no-manifest", f"{manifest} is missing"
    try:
        files = json.loads(manifest.read_text())["files"]
        entries = [(name, expected["bytes"], expected["sha256"])
                   for name, expected in files.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return "bad-manifest", f"{manifest} is unreadable ({type(err).__name__})"
    for name, size_expected, sha_expected in entries:
        path = directory / name
        if not path.is_file():
            return "missing-file", f"{path} is missing"
        size = path.stat().st_size
        if size != size_expected:
            return "wrong-size", (
                f"{path} is truncated or extended ({size} bytes, expected {size_expected})")
        if sha256_file(path) != sha_expected:
            return "corrupt", f"{path} is corrupt (sha256 mismatch)"
    return None


def verify(directory: Path) -> str | None:
    """None when ``directory`` matches its manifest, else a message naming the bad file."""
    problem = _diagnose(directory)
    return None if problem is None else problem[1]


def commit(tmp: Path, final: Path) -> None:
    """Rename a sealed temporary directory to ``final``, replacing an existing one.

    If the second rename fails, the previous ``final`` is put back.
    """
    with reporting_disk_full(final):
        if final.exists():
            trash = final.with_name(f".trash-{final.name}")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(trash, final)
                raise
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


def step_of(directory: Path) -> int:
    """The step number in a ``step_NNNNNNNN`` directory name."""
    match = STEP_DIR.match(directory.name)
    if match is None:
        raise ValueError(f"{directory} is not a step_NNNNNNNN checkpoint directory")
    return int(match.group(1))


def quarantine(directory: Path, reason: str) -> Path:
    """Rename an unusable checkpoint to ``<parent>/quarantine/<name>-<reason>`` (kept whole).

    Raises ``FileNotFoundError`` when ``directory`` is gone (e.g. another rank moved it first).
    """
    target_dir = directory.parent / QUARANTINE
    target_dir.mkdir(exist_ok=True)
    base = f"{directory.name}-{reason}"
    target, n = target_dir / base, 1
    while target.exists():
        target, n = target_dir / f"{base}.{n}", n + 1
    os.rename(directory, target)
    return target


def _set_aside(directory: Path, reason: str) -> str:
    """Quarantine ``directory``; a phrase saying where it went, for a warning."""
    try:
        return f"moved to {quarantine(directory, reason)}"
    except FileNotFoundError:
        return "already moved away"
    except OSError as err:
        return f"left in place, could not move it to {QUARANTINE}/ ({err.strerror})"


def find_resumable(root: Path, warn: bool = True,
                   set_aside: bool | None = None) -> Path | None:
    """The newest checkpoint that passes :func:`verify`.

    Each newer one that fails is skipped with a warning naming the bad file and, when
    ``set_aside`` is true, quarantined (see :func:`quarantine`) so that it no longer counts as
    newest for resuming or pruning. ``set_aside=None`` means: only in the main process
    (environment ``RANK`` unset or 0), so that the ranks of one launch do not race to move the
    same directories and the main process, whose warnings are shown, is the one that reports.
    """
    if set_aside is None:
        set_aside = int(os.environ.get("RANK", "0")) == 0
    candidates = list(reversed(step_dirs(root)))
    for i, (_, path) in enumerate(candidates):
        problem = _diagnose(path)
        if problem is None:
            return path
        where = _set_aside(path, problem[0]) if set_aside else "left in place"
        if warn:
            fallback = candidates[i + 1][1].name if i + 1 < len(candidates) else "a fresh start"
            warnings.warn(f"checkpoint {path.name} is unusable: {problem[1]}; {where}; "
                          f"trying {fallback}", stacklevel=2)
    held = root / QUARANTINE
    if warn and not candidates and held.is_dir() and any(held.iterdir()):
        warnings.warn(f"no usable checkpoint in {root} (unusable ones are kept in {held}); "
                      "trying a fresh start", stacklevel=2)
    return None


def prune(root: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints that pass :func:`verify`; delete older ones.

    Newer checkpoints that fail verification are quarantined (with a warning) instead of
    counting among the ``keep``.
    """
    kept = 0
    for _, path in reversed(step_dirs(root)):
        if kept >= keep:
            shutil.rmtree(path, ignore_errors=True)
            continue
        problem = _diagnose(path)
        if problem is None:
            kept += 1
        else:
            where = _set_aside(path, problem[0])
            warnings.warn(f"checkpoint {path.name} is unusable: {problem[1]}; {where}",
                          stacklevel=2)


def clear_temporaries(root: Path) -> None:
    """Remove leftovers (``.tmp-*``, ``.trash-*``) of a run killed while writing.

    A ``.trash-NAME`` without ``NAME`` is the previous ``NAME`` of a :func:`commit` killed
    between its two renames: it is renamed back rather than removed.
    """
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        name = path.name
        if name.startswith(".trash-") and not (root / name[len(".trash-"):]).exists():
            os.replace(path, root / name[len(".trash-"):])
        elif name.startswith((".tmp-", ".trash-")):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


def write_weights_dir(final: Path, weights: dict[str, torch.Tensor], info: dict) -> None:
    """Atomically write ``final/{weights.safetensors, info.json, MANIFEST.json}``.

    On failure (e.g. a full disk) the temporary directory is removed and ``final`` is untouched.
    """
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with reporting_disk_full(tmp):
            tmp.mkdir(parents=True)
        save_tensors(weights, tmp / "weights.safetensors")
        write_json_atomic(info, tmp / "info.json")
        seal(tmp)
        commit(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
