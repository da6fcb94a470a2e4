"""The one training loop of seqflow, on HuggingFace ``accelerate``.

The same code runs on one CPU (``seqflow train``) and on N processes
(``accelerate launch --num_processes N -m seqflow train``). It trains a *task*
(:mod:`seqflow.train.objectives`) on batches ``{"x", "context", "index"}`` that a
``DataLoader`` draws from any dataset in a deterministic ``(seed, step)`` order
(:mod:`seqflow.train.batches`). Per step it: reads this rank's shard of the global batch, runs
``grad_accum`` micro-batches through the task, checks the loss is finite on every rank, clips,
steps the optimizer and LR schedule, updates the EMA; periodically it logs, evaluates on the
validation split and writes checkpoints. The run directory's layout is in
:mod:`seqflow.train.run_dir`. SIGINT and SIGTERM (preemption) finish the current step, write a
checkpoint and stop with :class:`TrainingInterrupted`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import ProjectConfiguration, set_seed
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from seqflow.checks import describe_nonfinite
from seqflow.nn.threads import intra_op_threads
from seqflow.train import checkpoints as ckpt
from seqflow.train import run_dir as rd
from seqflow.train.batches import Batch, DeterministicBatches, collate, shard_range, to_device
from seqflow.train.config import (
    Config,
    config_to_dict,
    flat_config,
    load_config,
    record_config_change,
    save_config,
)
from seqflow.train.datasets import (
    build_splits,
    check_splits,
    derive_config,
    describe_source,
)
from seqflow.train.ema import EMA
from seqflow.train.models import build_flow, event_size, has_data_dependent_init
from seqflow.train.objectives import Task, log_prob_of
from seqflow.train.registry import build_task, check_config


class NonFiniteLossError(RuntimeError):
    """The loss, a gradient or the weights became NaN/Inf and training cannot go on."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped training after a checkpoint was written."""


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


class _StopSignals:
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Train ``cfg``'s task on ``cfg``'s data into ``out_dir``, resuming if possible.

    ``flow`` replaces the config-built model by a caller-built one: a
    :class:`~seqflow.distributions.Flow` or any ``nn.Module`` with ``log_prob(x)`` on
    ``(batch, model.features)`` rows (e.g. :class:`~seqflow.distributions.MADEMoG`). It is
    trained in place; the saved config records ``model.kind: custom``. To resume, pass a flow
    of the same architecture again (any weights: the checkpoint's replace them).
    ``splits`` replaces the configured data with caller-given datasets (``TensorDataset`` rows
    or any dataset of ``{"x", "context", "index"}`` items). ``task`` replaces the configured
    task (its ``model`` is what the run saves).
    """

    def __init__(self, cfg: Config, out_dir: str | Path, task: Task | None = None,
                 splits: dict[str, Dataset] | None = None, flow: nn.Module | None = None):
        check_config(cfg)
        if splits is None:
            cfg = derive_config(cfg)  # e.g. the series source's channels and local features
        if flow is not None:
            check_flow(flow, cfg.model.features)
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind="custom"))
        self.cfg, self.out, self.run = cfg, Path(out_dir), rd.RunDir(Path(out_dir))
        self._caller_flow, self._caller_task = flow, task
        self._given_splits = None if splits is None else check_splits(
            splits, event_size(cfg.model))
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
                project_dir=str(self.out), logging_dir=str(self.run.tensorboard)),
            step_scheduler_with_optimizer=False,
        )
        acc = self.accelerator
        # train.cpu_threads on CPU (0: keep the caller's count), restored by close()
        self._threads = intra_op_threads(
            t.cpu_threads if t.cpu_threads > 0 and acc.device.type == "cpu" else None)
        self._threads.__enter__()
        self.main = acc.is_main_process
        self.ckpt_root = self.run.checkpoints
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
        self.splits = self._given_splits or build_splits(cfg, run_dir=self.out)
        self.sampler = DeterministicBatches(len(self.splits["train"]), t.batch_size,
                                            acc.num_processes, acc.process_index, t.seed)
        if self._caller_task is not None:
            task = self._caller_task
        else:
            flow = (self._caller_flow if self._caller_flow is not None
                    else build_flow(cfg.model, cfg.data.mel))
            task = build_task(flow, cfg)
        for module in task.frozen().values():
            module.to(acc.device)
        if has_data_dependent_init(task.model):
            # Initialize from the first global batch, identical on every rank, before DDP wraps
            # the model: otherwise each rank would initialize from its own shard.
            first = DeterministicBatches(len(self.splits["train"]), self.sampler.global_batch,
                                         1, 0, t.seed).indices(0).tolist()
            task.to(acc.device).initialize(to_device(self._fetch("train", first), acc.device))
        trainable = [p for p in task.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
        self.task, self.optimizer, self.scheduler = acc.prepare(task, optimizer, scheduler)
        self.ema = EMA(self.model, t.ema_decay) if t.ema_decay > 0 else None

        self.step, self.skipped, self.skips_in_a_row, self.bad_evals = 0, 0, 0, 0
        self.best_val, self.last_val = math.inf, {}
        self.resumed_from = None
        if resume_dir is not None:
            self._load(resume_dir)
        elif self.main:
            self._truncate_log()
        self._last_saved = self.step if resume_dir is not None else -1

        if t.log_with != "none":
            acc.init_trackers("train", config=flat_config(cfg))
            self._tracking = True

    def _fetch(self, split: str, indices: list[int]) -> Batch:
        dataset = self.splits[split]
        getitems = getattr(dataset, "__getitems__", None)
        return collate(getitems(indices) if getitems is not None
                       else [dataset[i] for i in indices])

    @property
    def unwrapped(self) -> Task:
        return self.accelerator.unwrap_model(self.task)

    @property
    def model(self) -> nn.Module:
        """The module whose weights the run saves (the task's ``model``, e.g. the flow)."""
        return self.unwrapped.model

    flow = model

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.model

    # ----------------------------------------------------------------------------- run dir
    def _prepare_out_dir(self) -> Path | None:
        acc, run = self.accelerator, self.run
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
            rd.check_resume_compatible(run, self.cfg)
            if self._caller_flow is not None:
                rd.check_same_caller_flow(run, self._caller_flow)
            if self.main and run.config.is_file():
                changed = record_config_change(
                    self.out, config_to_dict(load_config(run.config)), config_to_dict(self.cfg),
                    step=ckpt.step_of(resume_dir))
                if changed:
                    warnings.warn(f"resuming at {resume_dir.name} with changed "
                                  f"{', '.join(changed)}; recorded in config_changes.jsonl",
                                  stacklevel=2)
        elif self.main and ckpt.step_dirs(self.ckpt_root):
            warnings.warn(f"no usable checkpoint in {self.ckpt_root}; starting from step 0",
                          stacklevel=2)
        if self.main:
            save_config(self.cfg, run.config)
            if self._given_splits is None and resume_dir is None:
                rd.record_data_source(run, self.cfg)
            if self._given_splits is not None:  # seqflow eval cannot rebuild these splits
                run.given_splits.write_text("trained on in-memory splits\n")
            if self._caller_flow is not None:  # nor a flow built outside the config
                ckpt.write_json_atomic(rd.flow_signature(self._caller_flow), run.caller_flow)
        acc.wait_for_everyone()
        return resume_dir

    def _state(self) -> dict:
        return {
            "format": 1, "step": self.step, "skipped": self.skipped,
            "skips_in_a_row": self.skips_in_a_row,
            "best_val_nll": None if math.isinf(self.best_val) else self.best_val,
            "num_processes": self.accelerator.num_processes,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "bad_evals": self.bad_evals,
        }

    def _load(self, directory: Path) -> None:
        state = json.loads((directory / rd.STATE_FILE).read_text())
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
        self.skips_in_a_row = state.get("skips_in_a_row", 0)
        self.bad_evals = state.get("bad_evals", 0)
        best = state["best_val_nll"]
        self.best_val = math.inf if best is None else best
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.load_tensors(directory / rd.EMA_FILE),
                                     state["ema_updates"])
        self.resumed_from = directory
        if self.main:
            self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop log lines of steps after the resumed checkpoint (all of them on a fresh start)."""
        path = self.run.log
        if path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= self.step and self.step > 0:
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
            flat = torch.cat([p.detach().double().flatten() for p in self.task.parameters()])
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
        try:
            with ckpt.reporting_disk_full(tmp):
                acc.save_state(str(tmp))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # the last good checkpoint stays as it is
            raise
        # accelerate's own RNG file is a pickle whose load failure it only logs; ours is not.
        ckpt.save_rng(tmp, acc.process_index)
        acc.wait_for_everyone()
        if self.main:
            if self.ema is not None:
                ckpt.save_tensors(self.ema.state_dict(), tmp / rd.EMA_FILE)
            ckpt.write_json_atomic(self._state(), tmp / rd.STATE_FILE)
            ckpt.seal(tmp)
            ckpt.commit(tmp, final)
            ckpt.prune(self.ckpt_root, self.cfg.train.keep_checkpoints)
        acc.wait_for_everyone()
        self._last_saved = self.step

    def _save_weights(self, name: str, val: dict[str, float]) -> None:
        if self.main:
            info = {"step": self.step, "val": val, "ema": self.ema is not None}
            ckpt.write_weights_dir(self.run.weights(name), self.eval_model.state_dict(), info)

    # ---------------------------------------------------------------------------- evaluate
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Mean per-sample score of ``split`` (sharded over ranks, summed) in the task's units."""
        acc, dataset = self.accelerator, self.splits[split]
        if len(dataset) == 0:
            return {}
        shard = Subset(dataset, shard_range(len(dataset), acc.num_processes,
                                            acc.process_index).tolist())
        task = self.unwrapped
        model = self.eval_model
        trained = task.model
        was_training = model.training
        task.model = model  # score the EMA weights when there are some
        model.eval()
        total = torch.zeros((), dtype=torch.float64)
        count, example = 0, None
        try:
            with torch.no_grad():
                for batch in _loader(shard, self.cfg.train.eval_batch_size):
                    batch = to_device(batch, acc.device)
                    total += task.evaluate(batch).double().sum().cpu()
                    count += len(batch["x"])
                    example = example or {"x": batch["x"][:1]}
        finally:
            task.model = trained
            model.train(was_training)
        summed = acc.reduce(torch.tensor([float(total), count], dtype=torch.float64,
                                         device=acc.device), reduction="sum")
        if example is None:  # this rank's shard was empty: read one item for the units
            example = collate([dataset[0]])
        return task.units(float(summed[0] / summed[1]), example)

    # ------------------------------------------------------------------------------- train
    def _nonfinite(self, loss: Tensor, batch: Batch, micro: int) -> bool:
        """True when the loss is NaN/Inf on any rank; raises when configured to stop."""
        local_bad = not bool(torch.isfinite(loss.detach()))
        flag = torch.tensor([float(local_bad)], device=self.accelerator.device)
        any_bad = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        if any_bad and self.cfg.train.on_nonfinite == "error":
            t = self.cfg.train
            where = (self._describe_bad_batch(batch) if local_bad
                     else "on another process")
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {self.step} (micro-batch "
                f"{micro % t.grad_accum + 1} of {t.grad_accum}, process "
                f"{self.accelerator.process_index}) {where}; set train.on_nonfinite=skip "
                "to skip such batches"
            )
        return any_bad

    def _describe_bad_batch(self, batch: Batch) -> str:
        """Blame the data only when the data hold NaN/Inf; else name the model's state."""
        origin = ("the given train split" if self._given_splits is not None
                  else describe_source(self.cfg.data))
        problem = describe_nonfinite(batch["x"].detach().cpu(), rows=batch["index"])
        if problem is not None:
            return f"because the batch from {origin} has {problem}"
        bad = [name for name, p in self.model.named_parameters()
               if not bool(torch.isfinite(p).all())]
        if bad:
            return f"with finite data: non-finite weights in {', '.join(bad[:5])}"
        return ("with finite data and finite weights (the model overflowed on this batch; "
                "lower train.lr or train.grad_clip)")

    def _train_step(self, loader) -> tuple[dict[str, Tensor] | None, float | None]:
        """One optimizer step over ``grad_accum`` micro-batches; None when it was skipped."""
        acc, t = self.accelerator, self.cfg.train
        bad, sums = False, {}
        self.unwrapped.step = self.step
        for k in range(self.step * t.grad_accum, (self.step + 1) * t.grad_accum):
            batch = self._with_noise(to_device(next(loader), acc.device), k)
            with acc.accumulate(self.task):
                out = self.task(batch)
                bad |= self._nonfinite(out.loss, batch, k)
                acc.backward(out.loss)
            for name, value in {"loss": out.loss.detach(), **out.metrics}.items():
                sums[name] = sums.get(name, 0.0) + value.float() / t.grad_accum
        grad_norm = None
        if not bad:
            # Gradients are already all-reduced here, so every rank sees the same norm.
            max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
            grad_norm = float(acc.clip_grad_norm_(self.task.parameters(), max_norm))
            if not math.isfinite(grad_norm):
                if t.on_nonfinite == "error":
                    bad_grads = [n for n, p in self.model.named_parameters()
                                 if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                    raise NonFiniteLossError(
                        f"non-finite gradient norm ({grad_norm}) at step {self.step} with a "
                        f"finite loss (non-finite gradients of {', '.join(bad_grads[:5])}); "
                        "set train.on_nonfinite=skip to skip such steps")
                bad = True
        if not bad:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if bad:
            self.skipped += 1
            self.skips_in_a_row += 1
            if self.skips_in_a_row > t.max_skips:
                raise NonFiniteLossError(
                    f"{self.skips_in_a_row} non-finite steps in a row up to step {self.step} "
                    f"(train.max_skips={t.max_skips}); the run is not recovering")
            return None, None
        self.skips_in_a_row = 0
        if self.ema is not None:
            self.ema.update(self.model)
        return sums, grad_norm

    def _with_noise(self, batch: Batch, k: int) -> Batch:
        """Add ``train.input_noise`` Gaussian noise to ``x`` of micro-batch ``k``.

        The noise of the whole global batch comes from a generator seeded by ``(seed, k)`` and
        each rank takes its slice, so it does not depend on the number of processes or on RNG
        state (resume-safe).
        """
        t = self.cfg.train
        if t.input_noise <= 0:
            return batch
        x = batch["x"]
        generator = torch.Generator().manual_seed((t.seed << 32) + k)
        rank = self.accelerator.process_index
        noise = torch.randn((self.sampler.global_batch, *x.shape[1:]), generator=generator)
        noise = noise[rank * len(x):(rank + 1) * len(x)].to(x.device, x.dtype)
        return {**batch, "x": x + t.input_noise * noise}

    def _check_weights_finite(self) -> None:
        bad = [name for name, p in self.model.named_parameters()
               if not bool(torch.isfinite(p).all())]
        if bad:
            raise NonFiniteLossError(f"weights are not finite at step {self.step} "
                                     f"({', '.join(bad[:5])}); no weights were saved from it")

    def _log(self, record: dict, bar: tqdm) -> None:
        self.accelerator.log(record, step=self.step)
        if self.main:
            with self.run.log.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
            shown = record.get("nll", record.get("loss"))
            if shown is not None:
                postfix = {"nll" if "nll" in record else "loss": f"{shown:.4f}"}
                if "nats_per_dim" in record and record["nats_per_dim"] != shown:
                    postfix["nats_dim"] = f"{record['nats_per_dim']:.4f}"
                postfix["samples_s"] = f"{record['samples_per_s']:.0f}"
                bar.set_postfix(postfix, refresh=False)

    def fit(self) -> TrainResult:
        acc, t = self.accelerator, self.cfg.train
        bar = tqdm(total=t.max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.main and t.progress))
        window: dict[str, Tensor] = {}
        window_steps, window_time, total_time, total_steps = 0, 0.0, 0.0, 0
        grad_norm = None
        self.sampler.start = self.step * t.grad_accum
        loader = iter(DataLoader(self.splits["train"], batch_sampler=self.sampler,
                                 collate_fn=collate))
        self.task.train()
        with _StopSignals() as stop:
            while self.step < t.max_steps and not self.patience_exhausted:
                start = time.perf_counter()
                sums, norm = self._train_step(loader)
                self.step += 1
                elapsed = time.perf_counter() - start
                window_time, total_time = window_time + elapsed, total_time + elapsed
                total_steps += 1
                bar.update(1)
                if sums is not None:
                    window_steps += 1
                    grad_norm = norm if norm is not None else grad_norm
                    for name, value in sums.items():
                        window[name] = window.get(name, 0.0) + value
                if self.step % t.log_every == 0 or self.step == t.max_steps:
                    self._log(self._window_record(window, window_steps, window_time, grad_norm),
                              bar)
                    window, window_steps, window_time = {}, 0, 0.0
                if self.step % t.eval_every == 0 or self.step == t.max_steps:
                    self._eval_and_keep_best()
                if self.step % t.checkpoint_every == 0:
                    self._check_weights_finite()
                    self.save_checkpoint()
                if stop.received is not None:
                    bar.close()
                    self._check_weights_finite()
                    if self._last_saved != self.step:
                        self.save_checkpoint()
                    raise TrainingInterrupted(
                        f"{stop.received} received: stopped after step {self.step}, which is "
                        f"saved in {self.ckpt_root / ckpt.step_dir_name(self.step)}; rerun the "
                        "same command to resume")
        bar.close()
        self._check_weights_finite()
        if not self.last_val:
            self._eval_and_keep_best()
        if self._last_saved != self.step:
            self.save_checkpoint()
        self._save_weights(rd.FINAL, self.last_val)
        acc.wait_for_everyone()
        global_batch = self.sampler.global_batch * t.grad_accum
        rate = total_steps / total_time if total_time > 0 else float("nan")
        return TrainResult(self.step, self.out, self.last_val, self.resumed_from, self.skipped,
                           rate, rate * global_batch, self.patience_exhausted)

    @property
    def patience_exhausted(self) -> bool:
        """True once ``train.patience`` evaluations in a row brought no better validation score."""
        return 0 < self.cfg.train.patience <= self.bad_evals

    def close(self) -> None:
        """End the trackers and release the run directory (also after an error)."""
        if self._tracking:
            self.accelerator.end_training()
            self._tracking = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        self._threads.__exit__(None, None, None)

    def _window_record(self, window: dict, steps: int, seconds: float,
                       grad_norm: float | None) -> dict:
        acc = self.accelerator
        record: dict = {"step": self.step, "lr": self.scheduler.get_last_lr()[0],
                        "skipped": self.skipped}
        if steps:
            stacked = torch.stack([window[k] / steps for k in sorted(window)])
            means = acc.reduce(stacked.to(acc.device), reduction="mean").tolist()
            record.update(dict(zip(sorted(window), means, strict=True)))
            record["steps_per_s"] = steps / seconds if seconds > 0 else float("nan")
            record["samples_per_s"] = (record["steps_per_s"] * self.sampler.global_batch
                                       * self.cfg.train.grad_accum)
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        return {k: v for k, v in record.items() if not isinstance(v, float) or math.isfinite(v)}

    def _eval_and_keep_best(self) -> None:
        val = self.evaluate("val")
        if not val:
            return
        score = val[self.unwrapped.score_name]
        if not math.isfinite(score):
            raise NonFiniteLossError(f"validation {self.unwrapped.score_name} is {score} at "
                                     f"step {self.step}; the model is broken")
        self.last_val = val
        self.accelerator.log({f"val/{k}": v for k, v in val.items()}, step=self.step)
        if self.main:
            with self.run.log.open("a") as handle:
                handle.write(json.dumps({"step": self.step, **{f"val_{k}": v
                                                               for k, v in val.items()}}) + "\n")
        if score < self.best_val:
            self.best_val, self.bad_evals = score, 0
            self._save_weights(rd.BEST, val)
        else:
            self.bad_evals += 1


def _loader(dataset: Dataset, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)


def train(cfg: Config, out_dir: str | Path, task: Task | None = None,
          splits: dict[str, Dataset] | None = None,
          flow: nn.Module | None = None) -> TrainResult:
    """Train (or resume) ``cfg`` into ``out_dir``; see :class:`Trainer`.

    ``splits`` replaces the configured data source with caller-given datasets (``train``
    required, ``val``/``test`` optional); ``cfg.data`` is then only recorded. ``flow``
    replaces the configured model with a caller-built one, trained in place; ``task`` replaces
    the configured task.
    """
    trainer = Trainer(cfg, out_dir, task, splits, flow)
    try:
        return trainer.fit()
    finally:
        trainer.close()
