"""Evaluate a distilled student on whole held-out utterances: its KL to the teacher, the
teacher's log-likelihood of its samples, and how close the samples are to the ground truth.

For every utterance of the split the student draws one waveform from the utterance's log-mel
(noise seeded by ``(data.seed, utterance index)``, so reruns agree) and the frozen teacher
scores it in one pass. Reported, per file and overall:

* ``kl``: ``KL(student || teacher)`` in nats per audio sample (closed form when both flows have
  per-step Gaussians, else Monte Carlo), ``kl_mc`` (always Monte Carlo);
* ``teacher_ll``: the teacher's log-likelihood of the student's sample (nats per sample), next
  to ``student_ll`` (the student's own) — compare with the teacher's LL of real speech;
* ``stft``: the multi-resolution STFT distance to the ground truth (the training loss's
  function and resolutions), ``mcd_db`` (mel-cepstral distortion) and F0 errors (pYIN)
  (:mod:`seqflow.metrics.audio`), frame by frame: the sample shares the ground truth's mel.

KL and log-likelihoods are weighted by samples (totals over total samples); STFT and MCD are
means over files; the F0 RMSE pools the frames voiced in both signals over all files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seqflow.metrics.audio import f0_metrics, mel_cepstral_distortion
from seqflow.train import run_dir as rd
from seqflow.train.audio_data import utterances
from seqflow.train.config import Config, load_config
from seqflow.train.objectives.distill import DistillTask
from seqflow.train.registry import build_task
from seqflow.train.run_dir import load_run

MCD_CEPSTRA = 24  # c_1..c_24, the usual MCD order (fewer when there are fewer mel bands)


def is_distill_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds a config whose ``train.task`` is ``distill``."""
    config = rd.RunDir(Path(run_dir)).config
    return config.is_file() and load_config(config).train.task == "distill"


def _score_file(task: DistillTask, cfg: Config, item: dict, seed: int, f0: bool) -> dict:
    x, mel = item["x"][None], item["context"][None]
    generator = torch.Generator().manual_seed(seed)
    terms = task.terms({"x": x, "context": mel, "index": torch.tensor([item["index"]])},
                       generator)
    sample = terms["x"].flatten(1)
    mel_settings = cfg.data.mel
    mcd = mel_cepstral_distortion(sample, x.flatten(1), mel_settings.sample_rate,
                                  n_fft=mel_settings.n_fft, hop_length=mel_settings.hop_length,
                                  n_mels=mel_settings.n_mels,
                                  n_cepstra=min(MCD_CEPSTRA, mel_settings.n_mels - 1),
                                  f_min=mel_settings.f_min, f_max=mel_settings.f_max)
    record = {"path": item["path"], "samples": x.shape[-1],
              **{k: float(terms[k]) for k in ("kl", "kl_mc", "reg", "teacher_ll")},
              "student_ll": -float(terms["student_entropy"]),
              "stft": float(task.stft_distance(sample, x.flatten(1))),
              "mcd_db": float(mcd[0]),
              "rms_sample": float(sample.square().mean().sqrt()),
              "rms_truth": float(x.square().mean().sqrt())}
    if f0:
        pitch = f0_metrics(sample[0].double().numpy(), x[0, 0].double().numpy(),
                           mel_settings.sample_rate)
        voiced = pitch.voiced_both > 0  # else no F0 error is defined: None, not NaN
        record.update(f0_rmse_hz=pitch.rmse_hz if voiced else None,
                      f0_rmse_cents=pitch.rmse_cents if voiced else None,
                      vuv_error_rate=pitch.vuv_error_rate, voiced_both=pitch.voiced_both)
    return record


def summarize_distill(files: list[dict]) -> dict:
    """Overall numbers of per-file records (see the module docstring for the weighting)."""
    if not files:
        raise ValueError("summarize_distill: no files were scored")
    samples = sum(f["samples"] for f in files)
    out = {"utterances": len(files), "samples": samples}
    for key in ("kl", "kl_mc", "reg", "teacher_ll", "student_ll"):
        out[key] = math.fsum(f[key] * f["samples"] for f in files) / samples
    for key in ("stft", "mcd_db", "rms_sample", "rms_truth"):
        out[key] = float(np.mean([f[key] for f in files]))
    voiced = [f for f in files if f.get("voiced_both", 0) > 0]
    if voiced:
        frames = sum(f["voiced_both"] for f in voiced)
        for key in ("f0_rmse_hz", "f0_rmse_cents"):
            out[key] = math.sqrt(math.fsum(f[key] ** 2 * f["voiced_both"] for f in voiced)
                                 / frames)
        out["vuv_error_rate"] = float(np.mean([f["vuv_error_rate"] for f in files]))
        out["f0_voiced_frames"] = frames
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
        for key in ("kl", "teacher_ll", "stft"):
            if not math.isfinite(record[key]):
                raise ValueError(f"{record['path']}: non-finite {key} {record[key]}")
    return {"split": None if data_dir is not None else split,
            "data": str(data_dir if data_dir is not None else cfg.data.path),
            "weights": info["weights"], "step": info["step"],
            "teacher": cfg.train.distill.teacher, "kl_estimator": cfg.train.distill.kl,
            "seconds": time.perf_counter() - start, **summarize_distill(files),
            "units": "kl, kl_mc, teacher_ll, student_ll: nats per audio sample (audio on "
                     "[-1, 1)); stft: multi-resolution STFT distance (L_sc + L_mag); mcd_db: "
                     "dB; f0: pYIN, frames voiced in both",
            "files": files}


def describe_distill(metrics: dict) -> str:
    """One line of the headline numbers."""
    where = f"{metrics['split']} split" if metrics.get("split") else metrics["data"]
    f0 = (f", F0 RMSE {metrics['f0_rmse_hz']:.1f} Hz" if "f0_rmse_hz" in metrics else "")
    return (f"KL {metrics['kl']:.4f} nats/sample, teacher LL of student samples "
            f"{metrics['teacher_ll']:.4f} nats/sample, MR-STFT {metrics['stft']:.4f}, MCD "
            f"{metrics['mcd_db']:.2f} dB{f0} over {metrics['utterances']} utterances of {where}")
