"""Use a finished (or interrupted) run directory: evaluate it, sample from it (loading it is
:func:`seqflow.train.run_dir.load_run`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from seqflow.checks import describe_nonfinite
from seqflow.train import run_dir as rd
from seqflow.train.batches import collate
from seqflow.train.datasets import build_splits
from seqflow.train.models import ONE_PASS_KINDS, SEQUENCE_KINDS
from seqflow.train.registry import build_task
from seqflow.train.run_dir import load_run


@torch.no_grad()
def evaluate_run(run_dir: str | Path, split: str = "test", weights: str = "auto",
                 batch_size: int | None = None) -> dict:
    """Mean score of ``split`` under the run's task (NLL in nats/sample, nats/dim, bits/dim)."""
    run = rd.RunDir(Path(run_dir))
    run.require()
    run.refuse_rebuild()
    run.refuse_given_splits()
    flow, cfg, info = load_run(run_dir, weights)
    splits = build_splits(rd.resolve_data_path(run, cfg), run_dir=run.root)
    if split not in splits:
        raise ValueError(f"split must be one of {', '.join(splits)}, got {split!r}")
    dataset = splits[split]
    if len(dataset) == 0:
        raise ValueError(f"the {split} split of {run_dir} is empty")
    task = build_task(flow, cfg).eval()
    total, count, example = 0.0, 0, None
    loader = DataLoader(dataset, batch_size=batch_size or cfg.train.eval_batch_size,
                        collate_fn=collate)
    for batch in loader:
        scores = task.evaluate(batch).double()
        if not bool(torch.isfinite(scores).all()):
            raise ValueError(f"{run_dir}: non-finite {task.score_name} on the {split} split "
                             f"(items {batch['index'][~torch.isfinite(scores)].tolist()[:10]})")
        total += float(scores.sum())
        count += len(scores)
        example = example or batch
    return {"split": split, "items": count, "step": info["step"], "weights": info["weights"],
            **task.units(total / count, example)}


@torch.no_grad()
def sample_run(run_dir: str | Path, num_samples: int, seed: int = 0, weights: str = "auto",
               length: int | None = None) -> Tensor:
    """Draw ``num_samples`` samples from the run's flow: ``(num_samples, features)`` or
    ``(num_samples, C, length)``."""
    chunks = list(sample_chunks(run_dir, num_samples, seed, weights, length, chunk=num_samples))
    return chunks[0]


@torch.no_grad()
def sample_chunks(run_dir: str | Path, num_samples: int, seed: int = 0, weights: str = "auto",
                  length: int | None = None, chunk: int = 4096) -> Iterator[Tensor]:
    """Yield ``num_samples`` samples in chunks of at most ``chunk`` (memory bounded by the chunk).

    The draws depend only on ``seed`` and ``chunk``; every chunk is checked finite.
    """
    if num_samples <= 0:
        raise ValueError(f"--num-samples must be positive, got {num_samples}")
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    flow, cfg, _ = load_run(run_dir, weights)
    sequence = cfg.model.kind in SEQUENCE_KINDS
    if sequence and cfg.model.cond_channels:
        way = (f"`seqflow vocode {run_dir} FILE.wav --out DIR` generates from the mels of audio "
               f"files in one pass (or `seqflow sample {run_dir} --mel-from FILE.wav --out "
               "OUT.wav`, one file)" if cfg.model.kind in ONE_PASS_KINDS else
               f"`seqflow sample {run_dir} --mel-from FILE.wav --out OUT.wav` streams a "
               "waveform from an audio file's mel")
        raise ValueError(f"{run_dir} is conditioned on a mel (model.cond_channels="
                         f"{cfg.model.cond_channels}); --num-samples draws without one: {way}")
    if sequence and length is None:
        raise ValueError(f"{run_dir} models sequences: give --length")
    if not sequence and length is not None:
        raise ValueError(f"{run_dir} models vectors: --length does not apply")
    torch.manual_seed(seed)
    done = 0
    while done < num_samples:
        n = min(chunk, num_samples - done)
        samples = flow.sample(n, length=length) if sequence else flow.sample(n)
        problem = describe_nonfinite(samples)
        if problem is not None:
            raise ValueError(f"{run_dir}: samples {done}..{done + n - 1} have {problem}; "
                             "refusing to write them")
        done += n
        yield samples
