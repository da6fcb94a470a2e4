"""The one training loop of seqflow, on HuggingFace ``accelerate``.

The same code runs on one CPU (``seqflow train``) and on N processes
(``accelerate launch --num_processes N -m seqflow train``). Per step it: reads this rank's
shard of a deterministic global batch, runs ``grad_accum`` micro-batches through the objective,
checks the loss is finite on every rank, clips, steps the optimizer and LR schedule, updates the
EMA; periodically it logs, evaluates on the validation split and writes checkpoints.

Run directory layout (only rank 0 writes, except accelerate's per-rank RNG files)::

    out/config.yaml                   resolved config
    out/checkpoints/step_NNNNNNNN/    accelerate state (model.safetensors, optimizer, scheduler,
                                      RNG) + ema.safetensors + trainer_state.json + MANIFEST.json
    out/best/, out/final/             weights.safetensors (EMA weights if enabled) + info.json
    out/train_log.jsonl, out/tensorboard/
    out/GIVEN_SPLITS, out/CALLER_FLOW  markers: trained on in-memory splits / a caller-built
                                      flow, which ``seqflow eval``/``sample`` cannot rebuild
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import ProjectConfiguration, set_seed
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from seqflow.train import checkpoints as ckpt
from seqflow.train.config import Config, config_to_dict, flat_config, load_config, save_config
from seqflow.train.data import ShardedBatches, build_splits, gather, shard_range
from seqflow.train.ema import EMA
from seqflow.train.models import build_flow, has_data_dependent_init
from seqflow.train.objectives import (
    LogProbModel,
    Objective,
    build_objective,
    evaluate_nll,
    log_prob_of,
    nll_units,
)

STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"
LOG_FILE = "train_log.jsonl"
GIVEN_SPLITS = "GIVEN_SPLITS"
CALLER_FLOW = "CALLER_FLOW"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf and ``train.on_nonfinite`` is ``error``."""


@dataclass
class TrainResult:
    step: int
    out_dir: Path
    val: dict[str, float] = field(default_factory=dict)
    resumed_from: Path | None = None
    skipped: int = 0
    steps_per_second: float = float("nan")
    samples_per_second: float = float("nan")
    stopped_early: bool = False


def lr_lambda(cfg: Config):
    """Multiplier of ``train.lr`` after ``step`` optimizer steps (linear warmup, then decay)."""
    warmup, total, kind = cfg.train.warmup_steps, cfg.train.max_steps, cfg.train.lr_schedule

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "linear":
            return 1.0 - progress
        return 1.0

    return factor


def resolve_mixed_precision(setting: str) -> str:
    """``auto`` means bf16 on a GPU and no mixed precision on CPU."""
    if setting != "auto":
        return setting
    forced_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return "bf16" if torch.cuda.is_available() and not forced_cpu else "no"


def _fresh_accelerate_state() -> None:
    # accelerate keeps process-wide singletons; in a single process (tests, notebooks) a second
    # run with another accumulation or precision setting needs them cleared first.
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and not torch.distributed.is_initialized():
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def check_resume_compatible(out: Path, cfg: Config) -> None:
    """Refuse to resume a run whose model or data differ from ``cfg``."""
    previous_path = out / "config.yaml"
    if not previous_path.is_file():
        return
    previous = config_to_dict(load_config(previous_path))
    current = config_to_dict(cfg)
    changed = [f"{s}.{k}" for s in ("model", "data") for k in current[s]
               if previous[s][k] != current[s][k]]
    if changed:
        raise ValueError(
            f"{out} holds a run with different {', '.join(changed)}; "
            "resume with the same model and data config or choose another --out"
        )


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


def check_flow(flow: nn.Module, features: int) -> None:
    """Refuse a caller-built flow that cannot score ``(batch, features)`` rows."""
    if not isinstance(flow, nn.Module) or not callable(getattr(flow, "log_prob", None)):
        raise ValueError(f"flow must be an nn.Module with a log_prob(x) method, got "
                         f"{type(flow).__name__}")
    shape = getattr(flow, "shape", None)
    if isinstance(shape, tuple):  # a seqflow Distribution knows its event shape
        if shape != (features,):
            raise ValueError(f"flow {type(flow).__name__} has event shape {shape} but "
                             f"model.features={features} (the data has {features} columns)")
        return
    was_training = flow.training
    try:
        with torch.no_grad():
            out = log_prob_of(flow.eval(), torch.zeros(2, features))
    except Exception as err:
        raise ValueError(f"flow {type(flow).__name__}.log_prob fails on a (2, {features}) batch "
                         f"of model.features={features}: {err}") from err
    finally:
        flow.train(was_training)
    if tuple(out.shape) != (2,):
        raise ValueError(f"flow {type(flow).__name__}.log_prob maps a (2, {features}) batch to "
                         f"shape {tuple(out.shape)}; expected (2,)")


def _tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class Trainer:
    """Train ``cfg``'s model on ``cfg``'s data into ``out_dir``, resuming if possible.

    ``flow`` replaces the config-built model by a caller-built one: a
    :class:`~seqflow.distributions.Flow` or any ``nn.Module`` with ``log_prob(x)`` on
    ``(batch, model.features)`` rows (e.g. :class:`~seqflow.mixture.MADEMoG`). It is trained in
    place; the saved config records ``model.kind: custom``. To resume, pass a flow of the same
    architecture again (any weights: the checkpoint's replace them).
    """

    def __init__(self, cfg: Config, out_dir: str | Path, objective: Objective | None = None,
                 splits: dict[str, TensorDataset] | None = None, flow: nn.Module | None = None):
        if flow is not None:
            check_flow(flow, cfg.model.features)
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind="custom"))
        self.cfg, self.out = cfg, Path(out_dir)
        self._caller_flow = flow
        self._given_splits = None if splits is None else check_splits(splits, cfg.model.features)
        self.objective = objective or build_objective(cfg.train.objective)
        _fresh_accelerate_state()
        t = cfg.train
        if t.log_with == "tensorboard" and not _tensorboard_installed():
            # accelerate would only warn and log nothing; a silent run without logs is worse.
            raise ValueError("train.log_with=tensorboard but the 'tensorboard' package is not "
                             "installed: pip install tensorboard, or --set train.log_with=none")
        self.accelerator = Accelerator(
            gradient_accumulation_steps=t.grad_accum,
            mixed_precision=resolve_mixed_precision(t.mixed_precision),
            log_with=None if t.log_with == "none" else t.log_with,
            project_config=ProjectConfiguration(
                project_dir=str(self.out), logging_dir=str(self.out / "tensorboard")),
            step_scheduler_with_optimizer=False,
        )
        acc = self.accelerator
        self._threads = torch.get_num_threads()
        if t.cpu_threads > 0 and acc.device.type == "cpu":
            torch.set_num_threads(t.cpu_threads)
        self.main = acc.is_main_process
        self.ckpt_root = self.out / "checkpoints"
        self._lock, self._tracking = None, False
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        cfg, t, acc = self.cfg, self.cfg.train, self.accelerator
        resume_dir = self._prepare_out_dir()

        set_seed(t.seed)
        splits = self._given_splits or build_splits(cfg.data, features=cfg.model.features)
        self.splits = splits
        self.train_rows = splits["train"].tensors[0].to(acc.device)
        self.batches = ShardedBatches(len(splits["train"]), t.batch_size, acc.num_processes,
                                      acc.process_index, t.seed)
        flow = self._caller_flow if self._caller_flow is not None else build_flow(cfg.model)
        if has_data_dependent_init(flow):
            # Initialize from the first global batch, identical on every rank, before DDP wraps
            # the model: otherwise each rank would initialize from its own shard.
            first = ShardedBatches(len(splits["train"]), self.batches.global_batch, 1, 0, t.seed)
            with torch.no_grad():
                flow.train().log_prob(gather(splits["train"], first.indices(0)))
        model = LogProbModel(flow)
        optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        self.ema = EMA(self.flow, t.ema_decay) if t.ema_decay > 0 else None

        self.step, self.skipped, self.bad_evals = 0, 0, 0
        self.best_val, self.last_val = math.inf, {}
        self.resumed_from = None
        if resume_dir is not None:
            self._load(resume_dir)
        self._last_saved = self.step if resume_dir is not None else -1

        if t.log_with != "none":
            acc.init_trackers("train", config=flat_config(cfg))
            self._tracking = True

    @property
    def flow(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model).flow

    @property
    def eval_flow(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.flow

    # ----------------------------------------------------------------------------- run dir
    def _prepare_out_dir(self) -> Path | None:
        acc = self.accelerator
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock = ckpt.lock_run_dir(self.out)
            ckpt.clear_temporaries(self.ckpt_root)
            ckpt.clear_temporaries(self.out)
        acc.wait_for_everyone()
        with warnings.catch_warnings():
            if not self.main:
                warnings.simplefilter("ignore")
            resume_dir = ckpt.find_resumable(self.ckpt_root)
        if resume_dir is not None:
            check_resume_compatible(self.out, self.cfg)
            self._check_same_caller_flow()
        elif self.main and ckpt.step_dirs(self.ckpt_root):
            warnings.warn(f"no usable checkpoint in {self.ckpt_root}; starting from step 0",
                          stacklevel=2)
        if self.main:
            save_config(self.cfg, self.out / "config.yaml")
            if self._given_splits is not None:  # seqflow eval cannot rebuild these splits
                (self.out / GIVEN_SPLITS).write_text("trained on in-memory splits\n")
            if self._caller_flow is not None:  # nor a flow built outside the config
                ckpt.write_json_atomic(flow_signature(self._caller_flow), self.out / CALLER_FLOW)
        acc.wait_for_everyone()
        return resume_dir

    def _check_same_caller_flow(self) -> None:
        """Refuse to resume a caller-built flow's run with a flow of another architecture."""
        if self._caller_flow is None:
            return  # the config's model.kind (not custom) already differs: see above
        path = self.out / CALLER_FLOW
        previous = json.loads(path.read_text()) if path.is_file() else None
        current = flow_signature(self._caller_flow)
        if previous != current:
            was = "an unrecorded flow" if previous is None else (
                f"{previous['class']} with {previous['parameters']} parameters")
            raise ValueError(
                f"{self.out} holds a run of {was}; the given flow is {current['class']} with "
                f"{current['parameters']} parameters and another architecture: resume with the "
                "same flow or choose another out_dir"
            )

    def _state(self) -> dict:
        return {
            "format": 1, "step": self.step, "skipped": self.skipped,
            "best_val_nll": None if math.isinf(self.best_val) else self.best_val,
            "num_processes": self.accelerator.num_processes,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "bad_evals": self.bad_evals,
        }

    def _load(self, directory: Path) -> None:
        state = json.loads((directory / STATE_FILE).read_text())
        if state["num_processes"] != self.accelerator.num_processes:
            raise ckpt.CheckpointError(
                f"{directory} was written by {state['num_processes']} process(es); exact resume "
                f"needs the same number, got {self.accelerator.num_processes}"
            )
        try:
            self.accelerator.load_state(str(directory))
        except Exception as err:  # a sealed checkpoint that still fails to load: do not guess
            raise ckpt.CheckpointError(
                f"cannot load {directory}: {type(err).__name__}: {str(err).splitlines()[0]}"
            ) from err
        ckpt.load_rng(directory, self.accelerator.process_index)
        self.step, self.skipped = state["step"], state["skipped"]
        self.bad_evals = state.get("bad_evals", 0)
        best = state["best_val_nll"]
        self.best_val = math.inf if best is None else best
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.load_tensors(directory / EMA_FILE), state["ema_updates"])
        self.resumed_from = directory
        if self.main:
            self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop log lines of steps after the resumed checkpoint (written before a crash)."""
        path = self.out / LOG_FILE
        if path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= self.step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by the kill
            path.write_text("".join(line + "\n" for line in kept))

    def check_in_sync(self) -> None:
        """Raise when the ranks' weights differ (they must be bitwise equal under DDP)."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().double().flatten() for p in self.flow.parameters()])
            weights = torch.arange(1, len(flat) + 1, dtype=torch.float64, device=flat.device)
            fingerprint = torch.stack([flat.sum(), (flat * weights).sum()]).unsqueeze(0)
        every = acc.gather(fingerprint)
        differs = (every != every[0]).any(dim=1).nonzero()[:, 0].tolist()
        if differs:
            raise RuntimeError(f"weights of process(es) {differs} differ from process 0's at "
                               f"step {self.step}; the ranks fell out of sync")

    def save_checkpoint(self) -> None:
        self.check_in_sync()
        acc = self.accelerator
        name = ckpt.step_dir_name(self.step)
        tmp, final = self.ckpt_root / f".tmp-{name}", self.ckpt_root / name
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        # accelerate's own RNG file is a pickle whose load failure it only logs; ours is not.
        ckpt.save_rng(tmp, acc.process_index)
        acc.wait_for_everyone()
        if self.main:
            if self.ema is not None:
                ckpt.save_tensors(self.ema.state_dict(), tmp / EMA_FILE)
            ckpt.write_json_atomic(self._state(), tmp / STATE_FILE)
            ckpt.seal(tmp)
            ckpt.commit(tmp, final)
            ckpt.prune(self.ckpt_root, self.cfg.train.keep_checkpoints)
        acc.wait_for_everyone()
        self._last_saved = self.step

    def _save_weights(self, name: str, val: dict[str, float]) -> None:
        if self.main:
            info = {"step": self.step, "val": val, "ema": self.ema is not None}
            ckpt.write_weights_dir(self.out / name, self.eval_flow.state_dict(), info)

    # ---------------------------------------------------------------------------- evaluate
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Mean NLL of ``split`` (sharded over ranks, summed), in nats and bits per dim."""
        acc, data = self.accelerator, self.splits[split].tensors[0]
        if len(data) == 0:
            return {}
        rows = data[shard_range(len(data), acc.num_processes, acc.process_index)]
        flow = self.eval_flow
        was_training = flow.training
        flow.eval()
        total, count = evaluate_nll(flow, rows.to(acc.device), self.cfg.train.eval_batch_size)
        flow.train(was_training)
        summed = acc.reduce(torch.tensor([total, count], dtype=torch.float64, device=acc.device),
                            reduction="sum")
        return nll_units(float(summed[0] / summed[1]), dims=data[0].numel())

    # ------------------------------------------------------------------------------- train
    def _nonfinite(self, loss: Tensor, micro: int, index: Tensor) -> bool:
        """True when the loss is NaN/Inf on any rank; raises when configured to stop."""
        local_bad = not bool(torch.isfinite(loss.detach()))
        flag = torch.tensor([float(local_bad)], device=self.accelerator.device)
        any_bad = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        if any_bad and self.cfg.train.on_nonfinite == "error":
            t = self.cfg.train
            if local_bad:
                rows = self.splits["train"].tensors[1][index.cpu()].tolist()
                shown = ", ".join(map(str, rows[:16])) + (" ..." if len(rows) > 16 else "")
                origin = ("the given train split" if self._given_splits is not None
                          else self.cfg.data.path or f"toy:{self.cfg.data.name}")
                where = f"in the batch of source rows [{shown}] of {origin}"
            else:
                where = "on another process"
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {self.step} (micro-batch "
                f"{micro % t.grad_accum + 1} of {t.grad_accum}, process "
                f"{self.accelerator.process_index}) {where}; set train.on_nonfinite=skip "
                "to skip such batches"
            )
        return any_bad

    def _batch(self, k: int, index: Tensor) -> Tensor:
        """Rows of micro-batch ``k`` plus optional Gaussian input noise.

        The noise of the whole global batch comes from a generator seeded by ``(seed, k)`` and
        each rank takes its slice, so it does not depend on the number of processes or on RNG
        state (resume-safe).
        """
        x, t = self.train_rows[index], self.cfg.train
        if t.input_noise > 0:
            generator = torch.Generator().manual_seed((t.seed << 32) + k)
            rank = self.accelerator.process_index
            noise = torch.randn((self.batches.global_batch, *x.shape[1:]), generator=generator)
            x = x + t.input_noise * noise[rank * len(x):(rank + 1) * len(x)].to(x.device)
        return x

    def _train_step(self, micro: int) -> tuple[dict[str, Tensor] | None, float | None]:
        """One optimizer step over ``grad_accum`` micro-batches; None when it was skipped."""
        acc, t = self.accelerator, self.cfg.train
        bad, sums = False, {}
        for k in range(micro, micro + t.grad_accum):
            index = self.batches.indices(k)
            with acc.accumulate(self.model):
                out = self.objective(self.model, self._batch(k, index), self.step)
                bad |= self._nonfinite(out.loss, k, index)
                acc.backward(out.loss)
            for name, value in {"loss": out.loss.detach(), **out.metrics}.items():
                sums[name] = sums.get(name, 0.0) + value.float() / t.grad_accum
        grad_norm = None
        if not bad:
            # Gradients are already all-reduced here, so every rank sees the same norm.
            max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
            grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), max_norm))
            if not math.isfinite(grad_norm):
                if t.on_nonfinite == "error":
                    raise NonFiniteLossError(
                        f"non-finite gradient norm ({grad_norm}) at step {self.step} with a "
                        "finite loss; set train.on_nonfinite=skip to skip such steps")
                bad = True
        if not bad:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if bad:
            self.skipped += 1
            return None, None
        if self.ema is not None:
            self.ema.update(self.flow)
        return sums, grad_norm

    def _log(self, record: dict, bar: tqdm) -> None:
        self.accelerator.log(record, step=self.step)
        if self.main:
            with (self.out / LOG_FILE).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
            if "loss" in record:
                bar.set_postfix(loss=f"{record['loss']:.4f}",
                                samples_s=f"{record['samples_per_s']:.0f}", refresh=False)

    def fit(self) -> TrainResult:
        acc, t = self.accelerator, self.cfg.train
        bar = tqdm(total=t.max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.main and t.progress))
        window: dict[str, Tensor] = {}
        window_steps, window_time, total_time, total_steps = 0, 0.0, 0.0, 0
        grad_norm = None
        self.model.train()
        while self.step < t.max_steps and not self.patience_exhausted:
            start = time.perf_counter()
            sums, norm = self._train_step(self.step * t.grad_accum)
            self.step += 1
            elapsed = time.perf_counter() - start
            window_time, total_time, total_steps = window_time + elapsed, total_time + elapsed, \
                total_steps + 1
            bar.update(1)
            if sums is not None:
                window_steps += 1
                grad_norm = norm if norm is not None else grad_norm
                for name, value in sums.items():
                    window[name] = window.get(name, 0.0) + value
            if self.step % t.log_every == 0 or self.step == t.max_steps:
                self._log(self._window_record(window, window_steps, window_time, grad_norm), bar)
                window, window_steps, window_time = {}, 0, 0.0
            if self.step % t.eval_every == 0 or self.step == t.max_steps:
                self._eval_and_keep_best()
            if self.step % t.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        if not self.last_val:
            self._eval_and_keep_best()
        if self._last_saved != self.step:
            self.save_checkpoint()
        self._save_weights("final", self.last_val)
        acc.wait_for_everyone()
        global_batch = self.batches.global_batch * t.grad_accum
        rate = total_steps / total_time if total_time > 0 else float("nan")
        return TrainResult(self.step, self.out, self.last_val, self.resumed_from, self.skipped,
                           rate, rate * global_batch, self.patience_exhausted)

    @property
    def patience_exhausted(self) -> bool:
        """True once ``train.patience`` evaluations in a row brought no better validation NLL."""
        return 0 < self.cfg.train.patience <= self.bad_evals

    def close(self) -> None:
        """End the trackers and release the run directory (also after an error)."""
        if self._tracking:
            self.accelerator.end_training()
            self._tracking = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        torch.set_num_threads(self._threads)

    def _window_record(self, window: dict, steps: int, seconds: float,
                       grad_norm: float | None) -> dict:
        acc = self.accelerator
        record: dict = {"step": self.step, "lr": self.scheduler.get_last_lr()[0],
                        "skipped": self.skipped}
        if steps:
            stacked = torch.stack([window[k] / steps for k in sorted(window)])
            means = acc.reduce(stacked.to(acc.device), reduction="mean").tolist()
            record.update(dict(zip(sorted(window), means, strict=True)))
            if "nll" in record:
                record.update(nll_units(record["nll"], dims=self.train_rows[0].numel()))
            record["steps_per_s"] = steps / seconds if seconds > 0 else float("nan")
            record["samples_per_s"] = (record["steps_per_s"] * self.batches.global_batch
                                       * self.cfg.train.grad_accum)
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        return record

    def _eval_and_keep_best(self) -> None:
        val = self.evaluate("val")
        if not val:
            return
        self.last_val = val
        self.accelerator.log({f"val/{k}": v for k, v in val.items()}, step=self.step)
        if self.main:
            with (self.out / LOG_FILE).open("a") as handle:
                handle.write(json.dumps({"step": self.step, **{f"val_{k}": v
                                                               for k, v in val.items()}}) + "\n")
        if val["nll"] < self.best_val:
            self.best_val, self.bad_evals = val["nll"], 0
            self._save_weights("best", val)
        else:
            self.bad_evals += 1


def check_splits(splits: dict[str, TensorDataset], features: int) -> dict[str, TensorDataset]:
    """Validate user-given splits and add a row-index tensor where missing.

    Each split is a ``TensorDataset`` whose first tensor is ``(rows, features)``; an optional
    second tensor ``(rows,)`` names each row's source index (used in error messages).
    """
    if "train" not in splits:
        raise ValueError(f"splits must include 'train', got {sorted(splits)}")
    checked = {}
    for name in ("train", "val", "test"):
        dataset = splits.get(name, TensorDataset(torch.empty(0, features)))
        if not isinstance(dataset, TensorDataset):
            raise ValueError(
                f"split {name!r} must be a TensorDataset, got {type(dataset).__name__}")
        data = dataset.tensors[0]
        if data.dim() != 2 or data.shape[1] != features:
            raise ValueError(f"split {name!r}: expected shape (rows, {features}), got "
                             f"{tuple(data.shape)}")
        rows = dataset.tensors[1] if len(dataset.tensors) > 1 else torch.arange(len(data))
        checked[name] = TensorDataset(data.float(), rows)
    return checked


def train(cfg: Config, out_dir: str | Path, objective: Objective | None = None,
          splits: dict[str, TensorDataset] | None = None,
          flow: nn.Module | None = None) -> TrainResult:
    """Train (or resume) ``cfg`` into ``out_dir``; see :class:`Trainer`.

    ``splits`` replaces the configured data source with in-memory ``TensorDataset`` splits
    (``train`` required, ``val``/``test`` optional); ``cfg.data`` is then only recorded.
    ``flow`` replaces the configured model with a caller-built one, trained in place.
    """
    trainer = Trainer(cfg, out_dir, objective, splits, flow)
    try:
        return trainer.fit()
    finally:
        trainer.close()
