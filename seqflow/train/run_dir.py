"""The run directory: its layout, its markers, and whether a config may resume it.

Only rank 0 writes, except accelerate's per-rank RNG files::

    RUN/config.yaml                   resolved config
    RUN/checkpoints/step_NNNNNNNN/    accelerate state (model.safetensors, optimizer, scheduler,
                                      RNG) + ema.safetensors + trainer_state.json + MANIFEST.json
    RUN/best/, RUN/final/             weights.safetensors (EMA weights if enabled) + info.json
    RUN/train_log.jsonl, RUN/tensorboard/
    RUN/GIVEN_SPLITS, RUN/CALLER_FLOW markers: trained on in-memory splits / a caller-built flow,
                                      which ``seqflow eval``/``sample`` cannot rebuild
    RUN/data_source.json              resolved path, size and sha256 of a file data source

The engine (:mod:`seqflow.train.engine`) writes these; :func:`load_run` and
:func:`load_weights` read a run's flow back for every application of a finished run.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from seqflow.data.sources import file_digest
from seqflow.distributions import Flow
from seqflow.train import checkpoints as ckpt
from seqflow.train.config import Config, config_to_dict, diff_configs, load_config
from seqflow.train.models import build_flow

CONFIG_FILE = "config.yaml"
LOG_FILE = "train_log.jsonl"
STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"
MODEL_FILE = "model.safetensors"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
BEST, FINAL, LAST = "best", "final", "last"
GIVEN_SPLITS = "GIVEN_SPLITS"
CALLER_FLOW = "CALLER_FLOW"
DATA_SOURCE = "data_source.json"


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (see the module docstring)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    def weights(self, which: str) -> Path:
        """``best`` or ``final`` weights directory."""
        return self.root / which

    @property
    def given_splits(self) -> Path:
        return self.root / GIVEN_SPLITS

    @property
    def caller_flow(self) -> Path:
        return self.root / CALLER_FLOW

    @property
    def data_source(self) -> Path:
        return self.root / DATA_SOURCE

    def require(self) -> None:
        """Raise when this is not a run directory written by ``seqflow train``."""
        if not self.config.is_file():
            raise FileNotFoundError(f"{self.root} is not a seqflow run directory (no "
                                    f"{CONFIG_FILE})")

    def refuse_rebuild(self) -> None:
        """Raise when the config alone cannot rebuild this run's flow or data."""
        if self.caller_flow.is_file():
            raise ValueError(f"{self.root} was trained with a caller-built flow "
                             "(Trainer(..., flow=...)) that its config cannot rebuild; build "
                             "the same flow and load the run into it with "
                             "seqflow.train.load_weights")

    def refuse_given_splits(self) -> None:
        if self.given_splits.is_file():
            raise ValueError(f"{self.root} was trained on in-memory splits that its config "
                             "cannot rebuild; evaluate it on your data with "
                             "seqflow.train.load_weights and the flow's log_prob")


def check_resume_compatible(run: RunDir, cfg: Config) -> None:
    """Refuse to resume a run whose model or data differ from ``cfg``."""
    if not run.config.is_file():
        return
    previous = config_to_dict(load_config(run.config))
    current = config_to_dict(cfg)
    changed = [f"{s}.{k}" for s in ("model", "data") for k in current[s]
               if previous[s].get(k) != current[s][k]]
    if changed:
        raise ValueError(
            f"{run.root} holds a run with different {', '.join(changed)}; "
            "resume with the same model and data config or choose another --out"
        )


def finished_run(out: str | Path, cfg: Config) -> bool:
    """Whether ``out`` holds a finished run (final weights) of exactly ``cfg``, to reuse as it is.

    False when ``out`` holds no finished run (train into it: an unfinished one resumes). A
    finished run of another config is refused in one line that names the changed keys; its
    data are checked where they are read (the sha256 of a csv/npy source, the digests of an
    audio split).
    """
    run = RunDir(Path(out))
    if not run.weights(FINAL).is_dir() or not run.config.is_file():
        return False
    changed = diff_configs(config_to_dict(load_config(run.config)), config_to_dict(cfg))
    if changed:
        raise ValueError(f"{run.root} holds a finished run of another config ({', '.join(changed)}"
                         "); delete it to train again, or choose another output folder")
    return True


def reusable_result(path: str | Path, settings: dict) -> dict | None:
    """The saved ``{"record", "settings", ...}`` at ``path`` when it was made with ``settings``;
    None when there is none; a one-line ValueError naming the changed settings otherwise."""
    path = Path(path)
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    recorded = saved.get("settings", {})
    if recorded != settings:
        changed = sorted(k for k in recorded.keys() | settings.keys()
                         if recorded.get(k) != settings.get(k))
        raise ValueError(f"{path} was made with other settings ({', '.join(changed)}); rerun "
                         "with the same settings or choose another output folder")
    return saved


def flow_signature(flow: nn.Module) -> dict:
    """Class, parameter count and a hash of every state-dict key, shape and dtype of ``flow``.

    Two flows with the same signature can load each other's checkpoints; resuming a run with a
    caller-built flow of another architecture is refused on a signature mismatch.
    """
    digest = hashlib.sha256()
    for key, value in flow.state_dict().items():
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype};".encode())
    return {"class": type(flow).__name__,
            "parameters": sum(p.numel() for p in flow.parameters()),
            "signature": digest.hexdigest()}


def check_same_caller_flow(run: RunDir, flow: nn.Module) -> None:
    """Refuse to resume a caller-built flow's run with a flow of another architecture."""
    previous = json.loads(run.caller_flow.read_text()) if run.caller_flow.is_file() else None
    current = flow_signature(flow)
    if previous != current:
        was = "an unrecorded flow" if previous is None else (
            f"{previous['class']} with {previous['parameters']} parameters")
        raise ValueError(
            f"{run.root} holds a run of {was}; the given flow is {current['class']} with "
            f"{current['parameters']} parameters and another architecture: resume with the "
            "same flow or choose another out_dir"
        )


def _file_identity(path: Path) -> dict:
    return {"path": str(path.resolve()), **file_digest(path)}


def record_data_source(run: RunDir, cfg: Config) -> None:
    """Record the resolved path and content hash of a file data source (``csv``/``npy``, a
    ``series`` file), so that evaluation rebuilds the same split from the same file, from any
    directory."""
    if cfg.data.source not in ("csv", "npy", "series") or not cfg.data.path:
        return
    path = Path(cfg.data.path)
    if path.is_file():
        run.data_source.write_text(json.dumps(_file_identity(path), indent=2) + "\n")


def resolve_data_path(run: RunDir, cfg: Config) -> Config:
    """``cfg`` with ``data.path`` replaced by the recorded absolute path, after checking the
    file still has the content the run was trained on (else a one-line error)."""
    if not run.data_source.is_file():
        return cfg
    recorded = json.loads(run.data_source.read_text())
    path = Path(recorded["path"])
    if not path.is_file():
        raise FileNotFoundError(f"{run.root} was trained on {path}, which no longer exists")
    current = _file_identity(path)
    if current["sha256"] != recorded["sha256"]:
        raise ValueError(f"{path} changed since {run.root} was trained on it (sha256 "
                         f"{recorded['sha256'][:12]} then, {current['sha256'][:12]} now): its "
                         "test split would differ and could contain training rows")
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(path)))


WEIGHTS = ("auto", BEST, FINAL, LAST)


def _last_checkpoint_weights(run: RunDir) -> tuple[dict[str, Tensor], dict]:
    directory = ckpt.find_resumable(run.checkpoints, set_aside=False)  # read-only
    if directory is None:
        raise ckpt.CheckpointError(f"{run.root} holds no usable checkpoint")
    state = json.loads((directory / STATE_FILE).read_text())
    if (directory / EMA_FILE).is_file():
        return ckpt.load_tensors(directory / EMA_FILE), {"step": state["step"]}
    raw = ckpt.load_tensors(directory / MODEL_FILE)
    weights = {k.removeprefix("model."): v for k, v in raw.items() if k.startswith("model.")}
    return weights, {"step": state["step"]}


def _read_weights(run: RunDir, weights: str) -> tuple[dict[str, Tensor], dict]:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    order = [BEST, FINAL, LAST] if weights == "auto" else [weights]
    for which in order:
        if which == LAST:
            state, info = _last_checkpoint_weights(run)
        elif run.weights(which).is_dir():
            state, info = ckpt.read_weights_dir(run.weights(which))
        elif weights == "auto":
            continue
        else:
            raise FileNotFoundError(f"{run.weights(which)} does not exist")
        bad = [k for k, v in state.items()
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise ValueError(f"{run.root}: the {which} weights are not finite "
                             f"({', '.join(bad[:5])}); refusing to evaluate or sample them")
        return state, {"weights": which, **info}
    raise ckpt.CheckpointError(f"{run.root} holds no weights")


def load_weights(run_dir: str | Path, flow: nn.Module, weights: str = "auto") -> dict:
    """Load a run's weights into ``flow`` (e.g. a caller-built one) and set it to eval mode.

    ``weights`` as in :func:`load_run`; returns ``{"weights": which, "step": ..., ...}``.
    """
    run = RunDir(Path(run_dir))
    run.require()
    state, info = _read_weights(run, weights)
    flow.load_state_dict(state)
    flow.eval()
    return info


def load_run(run_dir: str | Path, weights: str = "auto") -> tuple[Flow, Config, dict]:
    """Rebuild the flow of a run and load its weights.

    ``weights``: ``best`` (lowest validation score), ``final`` (end of training), ``last``
    (newest valid checkpoint) or ``auto`` (the first of those that exists). EMA weights are
    used whenever the run kept an EMA. Returns ``(flow in eval mode, config, info)``.
    """
    run = RunDir(Path(run_dir))
    run.require()
    run.refuse_rebuild()
    cfg = load_config(run.config)
    flow = build_flow(cfg.model, cfg.data.mel)
    info = load_weights(run_dir, flow, weights)
    return flow, cfg, info


def provenance(command: list[str], cwd: str | Path) -> dict:
    """Where raw results come from: the ``command`` (as a shell line), the machine (CPU model,
    cores, torch and its threads), the date, and the git commit of ``cwd`` with whether the work
    tree had uncommitted changes; taken when a run starts."""
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  cwd=cwd).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in run("lscpu").splitlines()
                if line.startswith("Model name:")), "unknown")
    return {"command": shlex.join(command),
            "machine": {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
                        "threads": torch.get_num_threads()},
            "date": datetime.date.today().isoformat(),
            "commit": run("git", "rev-parse", "HEAD"),
            "uncommitted_changes": bool(run("git", "status", "--porcelain",
                                            "--untracked-files=no"))}
