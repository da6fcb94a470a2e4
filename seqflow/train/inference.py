"""Use a finished (or interrupted) run directory: load its flow, evaluate it, sample from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from seqflow.distributions import Flow
from seqflow.train import checkpoints as ckpt
from seqflow.train.config import Config, load_config
from seqflow.train.data import build_splits
from seqflow.train.models import build_flow
from seqflow.train.objectives import evaluate_nll, nll_units

WEIGHTS = ("auto", "best", "final", "last")


def _last_checkpoint_weights(run: Path) -> tuple[dict[str, Tensor], dict]:
    directory = ckpt.find_resumable(run / "checkpoints")
    if directory is None:
        raise ckpt.CheckpointError(f"{run} holds no usable checkpoint")
    state = json.loads((directory / "trainer_state.json").read_text())
    if (directory / "ema.safetensors").is_file():
        return ckpt.load_tensors(directory / "ema.safetensors"), {"step": state["step"]}
    raw = ckpt.load_tensors(directory / "model.safetensors")
    weights = {k.removeprefix("flow."): v for k, v in raw.items()}
    return weights, {"step": state["step"]}


def _check_run_dir(run: Path, weights: str) -> None:
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a seqflow run directory (no config.yaml)")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")


def _read_weights(run: Path, weights: str) -> tuple[dict[str, Tensor], dict]:
    order = ["best", "final", "last"] if weights == "auto" else [weights]
    for which in order:
        if which == "last":
            state, info = _last_checkpoint_weights(run)
        elif (run / which).is_dir():
            state, info = ckpt.read_weights_dir(run / which)
        elif weights == "auto":
            continue
        else:
            raise FileNotFoundError(f"{run / which} does not exist")
        return state, {"weights": which, **info}
    raise ckpt.CheckpointError(f"{run} holds no weights")


def refuse_caller_flow(run_dir: str | Path) -> None:
    """Raise when ``run_dir`` was trained with ``Trainer(flow=...)``: its config cannot rebuild
    the flow, so ``seqflow eval``/``sample`` cannot use it."""
    if (Path(run_dir) / "CALLER_FLOW").is_file():
        raise ValueError(f"{run_dir} was trained with a caller-built flow (Trainer(..., flow=...)) "
                         "that its config cannot rebuild; build the same flow and load the run "
                         "into it with seqflow.train.inference.load_weights")


def load_weights(run_dir: str | Path, flow: nn.Module, weights: str = "auto") -> dict:
    """Load a run's weights into ``flow`` (e.g. a caller-built one) and set it to eval mode.

    ``weights`` as in :func:`load_run`; returns ``{"weights": which, "step": ..., ...}``.
    """
    run = Path(run_dir)
    _check_run_dir(run, weights)
    state, info = _read_weights(run, weights)
    flow.load_state_dict(state)
    flow.eval()
    return info


def load_run(run_dir: str | Path, weights: str = "auto") -> tuple[Flow, Config, dict]:
    """Rebuild the flow of a run and load its weights.

    ``weights``: ``best`` (lowest validation NLL), ``final`` (end of training), ``last`` (newest
    valid checkpoint) or ``auto`` (the first of those that exists). EMA weights are used
    whenever the run kept an EMA. Returns ``(flow in eval mode, config, info)``.
    """
    run = Path(run_dir)
    _check_run_dir(run, weights)
    refuse_caller_flow(run)
    cfg = load_config(run / "config.yaml")
    state, info = _read_weights(run, weights)
    flow = build_flow(cfg.model)
    flow.load_state_dict(state)
    return flow.eval(), cfg, info


def evaluate_run(run_dir: str | Path, split: str = "test", weights: str = "auto",
                 batch_size: int = 4096) -> dict:
    """NLL of ``split`` under the run's flow (nats/sample, nats/dim, bits/dim)."""
    refuse_caller_flow(run_dir)
    if (Path(run_dir) / "GIVEN_SPLITS").is_file():
        raise ValueError(f"{run_dir} was trained on in-memory splits that its config cannot "
                         "rebuild; evaluate it with seqflow.train.objectives.evaluate_nll")
    flow, cfg, info = load_run(run_dir, weights)
    splits = build_splits(cfg.data, features=cfg.model.features)
    if split not in splits:
        raise ValueError(f"split must be one of {', '.join(splits)}, got {split!r}")
    data = splits[split].tensors[0]
    if len(data) == 0:
        raise ValueError(f"the {split} split of {run_dir} is empty")
    total, count = evaluate_nll(flow, data, batch_size)
    return {"split": split, "rows": count, "step": info["step"], "weights": info["weights"],
            **nll_units(total / count, dims=data[0].numel())}


def write_samples(samples: Tensor, path: str | Path) -> None:
    """Write ``(num, features)`` samples as ``.npy``, ``.csv`` or ``.safetensors``."""
    path = Path(path)
    array = samples.detach().cpu().numpy()
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".csv":
        np.savetxt(path, array, delimiter=",", fmt="%.8g")
    elif path.suffix == ".safetensors":
        ckpt.save_tensors({"samples": samples}, path)
    else:
        raise ValueError(f"{path}: unknown sample format {path.suffix!r}; use .npy, .csv or "
                         ".safetensors")


@torch.no_grad()
def sample_run(run_dir: str | Path, num: int, seed: int = 0, weights: str = "auto") -> Tensor:
    """Draw ``(num, features)`` samples from the run's flow."""
    if num <= 0:
        raise ValueError(f"--num must be positive, got {num}")
    flow, _, _ = load_run(run_dir, weights)
    torch.manual_seed(seed)
    return flow.sample(num)
