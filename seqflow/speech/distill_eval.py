"""Evaluate a distilled student on whole held-out utterances: its KL to the teacher, the
teacher's log-likelihood of its samples, and how close the samples are to the ground truth.

For every utterance of the split the student draws one waveform from the utterance's log-mel
(noise seeded by ``(data.seed, utterance index)``, so reruns agree) and the frozen teacher
scores it in one pass. Reported, per file and overall:

* ``kl``: ``KL(student || teacher)`` in nats per audio sample (closed form when both flows have
  per-step Gaussians, else Monte Carlo), ``kl_mc`` (always Monte Carlo);
* ``teacher_ll``: the teacher's log-likelihood of the student's sample (nats per sample), next
  to ``student_ll`` (the student's own) — compare with the teacher's LL of real speech;
* how close the sample is to the ground truth, frame by frame (the sample shares the ground
  truth's mel): the speech-quality record of :func:`~seqflow.metrics.audio.speech_quality`,
  ``mr_stft``, ``lsd_db``, ``mcd_db``, ``f0_rmse_hz``, ``f0_rmse_cents``, ``vuv_error_rate``,
  ``voiced_both`` and ``rms_ratio``, with its fixed analysis settings (the same numbers
  ``seqflow vocode`` reports).

KL and log-likelihoods are weighted by samples (totals over total samples); MR-STFT, LSD, MCD,
the V/UV error and the RMS ratio are means over files; the F0 RMSE pools the frames voiced in
both signals over all files (``voiced_both`` is their total). Utterances shorter than
:data:`~seqflow.metrics.audio.QUALITY_MIN_SAMPLES` get no speech-quality keys.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seqflow.metrics.audio import QUALITY_MIN_SAMPLES, speech_quality
from seqflow.train import run_dir as rd
from seqflow.train.audio_data import utterances
from seqflow.train.config import Config, load_config
from seqflow.train.objectives.distill import DistillTask
from seqflow.train.registry import build_task
from seqflow.train.run_dir import load_run


def is_distill_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds a config whose ``train.task`` is ``distill``."""
    config = rd.RunDir(Path(run_dir)).config
    return config.is_file() and load_config(config).train.task == "distill"


def _score_file(task: DistillTask, cfg: Config, item: dict, seed: int, f0: bool) -> dict:
    x, mel = item["x"][None], item["context"][None]
    generator = torch.Generator().manual_seed(seed)
    terms = task.terms({"x": x, "context": mel, "index": torch.tensor([item["index"]])},
                       generator)
    sample = terms["x"].flatten()
    record = {"path": item["path"], "samples": x.shape[-1],
              **{k: float(terms[k]) for k in ("kl", "kl_mc", "reg", "teacher_ll")},
              "student_ll": -float(terms["student_entropy"])}
    if sample.shape[0] >= QUALITY_MIN_SAMPLES:
        record.update(speech_quality(sample, x.flatten(), cfg.data.mel.sample_rate,
                                     f0=f0).to_dict())
    return record


def summarize_distill(files: list[dict]) -> dict:
    """Overall numbers of per-file records (see the module docstring for the weighting)."""
    if not files:
        raise ValueError("summarize_distill: no files were scored")
    samples = sum(f["samples"] for f in files)
    out = {"utterances": len(files), "samples": samples}
    for key in ("kl", "kl_mc", "reg", "teacher_ll", "student_ll"):
        out[key] = math.fsum(f[key] * f["samples"] for f in files) / samples
    for key in ("mr_stft", "lsd_db", "mcd_db", "vuv_error_rate", "rms_ratio"):
        values = [f[key] for f in files if f.get(key) is not None]
        if values:
            out[key] = float(np.mean(values))
    voiced = [f for f in files if (f.get("voiced_both") or 0) > 0]
    if voiced:
        frames = sum(f["voiced_both"] for f in voiced)
        for key in ("f0_rmse_hz", "f0_rmse_cents"):
            out[key] = math.sqrt(math.fsum(f[key] ** 2 * f["voiced_both"] for f in voiced)
                                 / frames)
        out["voiced_both"] = frames
    return out


@torch.no_grad()
def evaluate_distill_run(run_dir: str | Path, split: str = "test", weights: str = "auto",
                         data_dir: str | Path | None = None, f0: bool = True,
                         progress: bool = True) -> dict:
    """Score a distilled student on whole utterances of ``split`` (or every file of
    ``data_dir``) against its teacher and the ground truth.

    Returns ``{"split", "data", "weights", "step", "teacher", "seconds", **summary,
    "files": [...]}`` (see :func:`summarize_distill`).
    """
    run = rd.RunDir(Path(run_dir))
    run.require()
    student, cfg, info = load_run(run_dir, weights)
    if cfg.train.task != "distill":
        raise ValueError(f"{run_dir}: not a distillation run (train.task={cfg.train.task!r})")
    if cfg.data.source != "audio":
        raise ValueError(f"{run_dir}: distillation is evaluated on speech runs (data.source: "
                         f"audio), got data.source={cfg.data.source!r}")
    task = build_task(student, cfg).eval()
    dataset = utterances(cfg, run.root, split, data_dir)
    start = time.perf_counter()
    files = [
        _score_file(task, cfg, dataset[i], cfg.data.seed * 1_000_003 + i, f0)
        for i in tqdm(range(len(dataset)), desc="eval distill", unit="file",
                      disable=not progress)
    ]
    for record in files:
        for key in ("kl", "teacher_ll", "mr_stft"):
            if key in record and not math.isfinite(record[key]):
                raise ValueError(f"{record['path']}: non-finite {key} {record[key]}")
    return {"split": None if data_dir is not None else split,
            "data": str(Path(data_dir).resolve() if data_dir is not None else cfg.data.path),
            "weights": info["weights"], "step": info["step"],
            "teacher": cfg.train.distill.teacher, "kl_estimator": cfg.train.distill.kl,
            "seconds": time.perf_counter() - start, **summarize_distill(files),
            "units": "kl, kl_mc, teacher_ll, student_ll: nats per audio sample (audio on "
                     "[-1, 1)); mr_stft: multi-resolution STFT loss (L_sc + L_mag); lsd_db, "
                     "mcd_db: dB; f0_rmse_hz/cents over the frames voiced in both (pYIN); "
                     "rms_ratio: RMS of the sample over the ground truth's "
                     "(seqflow.metrics.audio.speech_quality)",
            "files": files}


def describe_distill(metrics: dict) -> str:
    """One line of the headline numbers."""
    where = f"{metrics['split']} split" if metrics.get("split") else metrics["data"]
    quality = ""
    if "mcd_db" in metrics:
        quality = f", MR-STFT {metrics['mr_stft']:.4f}, MCD {metrics['mcd_db']:.2f} dB"
    if "f0_rmse_hz" in metrics:
        quality += f", F0 RMSE {metrics['f0_rmse_hz']:.1f} Hz"
    return (f"KL {metrics['kl']:.4f} nats/sample, teacher LL of student samples "
            f"{metrics['teacher_ll']:.4f} nats/sample{quality} over {metrics['utterances']} "
            f"utterances of {where}")
