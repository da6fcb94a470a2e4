"""Log-likelihood of whole utterances, in nats per sample and bits per 16-bit sample.

Audio is 16-bit PCM scaled to ``[-1, 1)`` (code ``k`` becomes ``k / 32768``) and, when the run
dequantizes, given uniform noise of one quantization step ``2^-15`` (:mod:`seqflow.data.audio`).
For a density ``p`` on that scale the discrete probability of a 16-bit code is at least
``2^-15`` times ``exp(E[log p(x + u)])`` (Jensen), so

    bits per 16-bit sample <= 15 - LL / ln 2,

with ``LL`` the mean log-likelihood in nats per sample (Theis et al. 2016). Means over a set of
utterances weight every sample equally (total log-likelihood / total samples); per-file numbers
are kept too. Any model scored through :func:`summarize` on the same
:class:`~seqflow.data.audio.AudioUtterances` is in the same units.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from seqflow.data.audio import AudioUtterances
from seqflow.nn.context import SequenceContext
from seqflow.train import run_dir as rd
from seqflow.train.audio_data import utterances
from seqflow.train.run_dir import load_run

BITS_PER_STEP = 15.0  # -log2 of the quantization step 2 / 65536 on [-1, 1)
DEQUANTIZED = ("audio scaled to [-1, 1) (16-bit code k -> k / 32768) with uniform "
               "dequantization of one step (2^-15); bits per 16-bit sample = 15 - LL / ln 2, "
               "an upper bound on the code length of the 16-bit values")
NOT_DEQUANTIZED = ("audio scaled to [-1, 1) (16-bit code k -> k / 32768), NOT dequantized: "
                   "a density at the 16-bit grid, not a code length; the bits column is "
                   "15 - LL / ln 2 for comparison only")


def bits_per_16bit_sample(nats_per_sample: float) -> float:
    """``15 - LL / ln 2`` for a log-likelihood ``LL`` in nats per sample on ``[-1, 1)``.

    >>> round(bits_per_16bit_sample(0.0), 3), round(bits_per_16bit_sample(math.log(2)), 3)
    (15.0, 14.0)
    """
    return BITS_PER_STEP - nats_per_sample / math.log(2.0)


def summarize(files: list[dict], dequantized: bool = True) -> dict:
    """Totals of per-file records ``{"path", "samples", "log_prob"}`` (nats).

    Returns ``{"utterances", "samples", "minutes" (at 16 kHz unless "sample_rate" is in the
    records), "nats_per_sample", "bits_per_16bit_sample", "file_mean_nats_per_sample",
    "units"}``; ``nats_per_sample`` is the total log-likelihood over the total samples.
    """
    if not files:
        raise ValueError("summarize: no files were scored")
    samples = sum(int(f["samples"]) for f in files)
    total = math.fsum(float(f["log_prob"]) for f in files)
    rate = files[0].get("sample_rate", 16000)
    ll = total / samples
    return {
        "utterances": len(files),
        "samples": samples,
        "minutes": samples / rate / 60.0,
        "nats_per_sample": ll,
        "bits_per_16bit_sample": bits_per_16bit_sample(ll),
        "file_mean_nats_per_sample": math.fsum(f["log_prob"] / f["samples"] for f in files)
        / len(files),
        "units": DEQUANTIZED if dequantized else NOT_DEQUANTIZED,
    }


def score_utterances(log_prob: Callable[[Tensor, Tensor], float], dataset: AudioUtterances,
                     progress: bool = True, desc: str = "scoring") -> list[dict]:
    """Per-file records ``{"path", "samples", "sample_rate", "log_prob", "nats_per_sample"}``.

    ``log_prob(x, mel)`` gets one utterance ``x`` ``(1, 1, T)`` and its log-mel
    ``(1, n_mels, T // hop)`` and returns its total log-likelihood in nats. A non-finite score
    is an error naming the file.
    """
    records = []
    for i in tqdm(range(len(dataset)), desc=desc, unit="file", disable=not progress):
        item = dataset[i]
        x, mel = item["x"][None], item["context"][None]
        value = float(log_prob(x, mel))
        if not math.isfinite(value):
            raise ValueError(f"{item['path']}: non-finite log-likelihood {value}")
        samples = x.shape[-1]
        records.append({"path": item["path"], "samples": samples,
                        "sample_rate": dataset.sample_rate, "log_prob": value,
                        "nats_per_sample": value / samples})
    return records


def flow_log_prob(flow) -> Callable[[Tensor, Tensor], float]:
    """``(x, mel) -> log p(x | mel)`` of a mel-conditioned sequence flow, in float64 sums."""
    device = next(flow.parameters()).device

    @torch.no_grad()
    def score(x: Tensor, mel: Tensor) -> float:
        context = SequenceContext(mel.to(device), None)
        return float(flow.log_prob(x.to(device), context).double().sum())

    return score


def results_name(split: str, data_dir: str | Path | None = None) -> str:
    """The name of a run's results: ``split``, or for a data folder
    ``data_<folder name>_<first 10 hex of the sha256 of its resolved path>``.

    Results of two folders of one name (``a/clips``, ``b/clips``) go to two names; the same
    folder, however it is spelled, keeps one.
    """
    if data_dir is None:
        return split
    folder = Path(data_dir).resolve()
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
    return f"data_{folder.name}_{digest}"


def evaluate_audio_run(run_dir: str | Path, split: str = "test", weights: str = "auto",
                       data_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Score a speech run on whole utterances of ``split`` (or every file of ``data_dir``).

    Returns ``{"split", "data", "weights", "step", "seconds", **summarize(...), "files": [...]}``.
    """
    run = rd.RunDir(Path(run_dir))
    run.require()
    flow, cfg, info = load_run(run_dir, weights)
    if cfg.data.source != "audio":
        raise ValueError(f"{run_dir}: not a speech run (data.source={cfg.data.source!r}); "
                         "--data applies to runs with data.source: audio")
    if not cfg.model.cond_channels:
        raise ValueError(f"{run_dir}: the model takes no mel context (model.cond_channels=0)")
    dataset = utterances(cfg, run.root, split, data_dir)
    start = time.perf_counter()
    files = score_utterances(flow_log_prob(flow), dataset, progress,
                             desc=f"eval {split if data_dir is None else data_dir}")
    summary = summarize(files, cfg.data.dequantize)
    return {"split": None if data_dir is not None else split,
            "data": str(Path(data_dir).resolve() if data_dir is not None else cfg.data.path),
            "weights": info["weights"], "step": info["step"],
            "seconds": time.perf_counter() - start, **summary, "files": files}


def describe_eval(metrics: dict) -> str:
    """One line: ``LL nats/sample (bits per 16-bit sample)`` and what was scored."""
    where = f"{metrics['split']} split" if metrics.get("split") else metrics["data"]
    return (f"{metrics['nats_per_sample']:.4f} nats/sample "
            f"({metrics['bits_per_16bit_sample']:.3f} bits per 16-bit sample) log-likelihood "
            f"over {metrics['utterances']} whole utterances of {where} "
            f"({metrics['minutes']:.2f} min); {metrics['units']}")
