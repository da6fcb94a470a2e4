"""``seqflow vocode``: waveforms from mels in one pass with a run's IAF, batched, with metrics.

Every input is an audio file (its log-mel is taken with the run's feature settings, and the
audio trimmed to ``frames * hop`` samples is the reference) or a saved log-mel ``.npy``
``(n_mels, frames)``. The noise of input ``i`` is ``z ~ N(0, temperature^2 I)`` drawn from
``(seed, i)``, so a file's waveform does not depend on the batch it lands in. Inputs are
batched by length (longest first), their mels zero-padded to the longest of the batch; the
model is causal in time and its upsampler linear, so the padding leaves every kept sample
unchanged (:mod:`seqflow.speech.vocoder`). Each output is trimmed to ``frames * hop`` samples.
Without gradient recording, long sequences run through the conditioners in chunks
(:mod:`seqflow.nn.chunking`).

Writes ``DIR/NAME.wav`` (16-bit PCM), ``DIR/NAME.png`` (the input's log-mel above the vocoded
waveform's) and ``DIR/metrics.json``: per file the speech-quality record against the reference
(:func:`~seqflow.metrics.audio.speech_quality`: MR-STFT loss, LSD, MCD, F0 errors, RMS ratio;
audio inputs longer than the largest STFT window only), and the wall-clock
seconds and real-time factor of the batch the file was generated in (batch size 1 gives
per-file timings).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from seqflow.data.features import LogMel
from seqflow.metrics.audio import QUALITY_MIN_SAMPLES, speech_quality
from seqflow.nn.threads import intra_op_threads
from seqflow.speech.audio_io import mel_of_audio_file, write_wav
from seqflow.speech.pictures import mel_panels_png
from seqflow.speech.vocoder import MelVocoder, load_vocoder
from seqflow.train.checkpoints import write_json_atomic

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MEL_SUFFIX = ".npy"
# speech_quality's keys averaged over the files in metrics.json's "total" (as mean_<key>)
MEAN_KEYS = ("mr_stft", "lsd_db", "mcd_db", "f0_rmse_hz", "vuv_error_rate", "rms_ratio")


@dataclass
class VocodeInput:
    """One input: its ``name`` (file stem), log-mel ``mel`` ``(n_mels, frames)`` and, for an
    audio file, the reference ``audio`` ``(frames * hop,)``."""

    path: Path
    name: str
    mel: Tensor
    audio: Tensor | None


def read_mel_npy(path: str | Path, n_mels: int) -> Tensor:
    """A saved log-mel ``(n_mels, frames)`` as float32; one-line errors name file and shape."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read a mel array ({err})") from None
    if array.ndim != 2 or array.shape[0] != n_mels or array.shape[1] < 1:
        raise ValueError(f"{path}: mel of shape {array.shape} does not fit the run: expected "
                         f"({n_mels}, frames) with n_mels={n_mels}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: mel has dtype {array.dtype}; expected floating-point log-mel")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: mel of shape {array.shape} holds NaN or Inf values")
    return torch.from_numpy(array.astype(np.float32))


def read_input(path: str | Path, logmel: LogMel) -> VocodeInput:
    """An audio file (wav/flac/ogg) or a ``.npy`` log-mel as a :class:`VocodeInput`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == MEL_SUFFIX:
        return VocodeInput(path, path.stem, read_mel_npy(path, logmel.n_mels), None)
    if suffix not in AUDIO_SUFFIXES:
        raise ValueError(f"{path}: unknown input type {path.suffix!r}; give audio "
                         f"({', '.join(AUDIO_SUFFIXES)}) or a log-mel {MEL_SUFFIX}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    audio, mel = mel_of_audio_file(path, logmel)
    return VocodeInput(path, path.stem, mel[0], audio)


def input_noise(seed: int, index: int, length: int, temperature: float) -> Tensor:
    """``z ~ N(0, temperature^2)`` ``(1, length)`` for input ``index``, from ``(seed, index)``."""
    entropy = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))
    return temperature * torch.randn(1, length, generator=generator)


@torch.no_grad()
def vocode_batch(vocoder: MelVocoder, mels: Sequence[Tensor], noises: Sequence[Tensor]
                 ) -> list[Tensor]:
    """Waveforms ``(frames_i * hop,)`` of mels ``(n_mels, frames_i)`` and noises
    ``(1, frames_i * hop)`` in one batched pass (zero-padded to the longest)."""
    hop = vocoder.hop_length
    frames = [mel.shape[-1] for mel in mels]
    longest = max(frames)
    mel = torch.stack([F.pad(m, (0, longest - m.shape[-1])) for m in mels])
    z = torch.stack([F.pad(n, (0, longest * hop - n.shape[-1])) for n in noises])
    ref = next(vocoder.parameters())
    out = vocoder(mel.to(ref), z.to(ref)).cpu()
    return [out[i, 0, : f * hop] for i, f in enumerate(frames)]


def min_metric_samples() -> int:
    """Shortest reference the metrics accept (:data:`~seqflow.metrics.audio.QUALITY_MIN_SAMPLES`:
    longer than half the largest MR-STFT window)."""
    return QUALITY_MIN_SAMPLES


def _check_outputs(inputs: Sequence[str | Path], out_dir: Path) -> None:
    names: dict[str, Path] = {}
    sources = {Path(p).resolve() for p in inputs}
    for p in inputs:
        stem = Path(p).stem
        if stem in names:
            raise ValueError(f"{p} and {names[stem]} would both write {out_dir / stem}.wav; "
                             "rename one")
        names[stem] = Path(p)
        for suffix in (".wav", ".png"):
            if (out_dir / f"{stem}{suffix}").resolve() in sources:
                raise ValueError(f"{p}: the output {out_dir / stem}{suffix} would overwrite an "
                                 "input; choose another --out")


def vocode_files(run_dir: str | Path, inputs: Sequence[str | Path], out_dir: str | Path,
                 seed: int = 0, temperature: float = 1.0, batch_size: int = 4,
                 weights: str = "auto", threads: int | None = None, metrics: bool = True,
                 progress: bool = True) -> dict:
    """Vocode ``inputs`` with the one-pass model of ``run_dir`` into ``out_dir``.

    Returns (and writes as ``out_dir/metrics.json``) ``{"run", "weights", "step", "seed",
    "temperature", "batch_size", "threads", "sample_rate", "files": [...], "total": {...}}``;
    ``files`` follow the order of ``inputs``.
    """
    if not inputs:
        raise ValueError("give at least one input file")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be a positive int, got {batch_size!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"--temperature must be finite and >= 0, got {temperature}")
    out_dir = Path(out_dir)
    _check_outputs(inputs, out_dir)
    vocoder, _, cfg, info = load_vocoder(run_dir, weights)
    logmel = LogMel(cfg.data.mel)
    rate, hop = cfg.data.mel.sample_rate, cfg.data.mel.hop_length
    items = [read_input(p, logmel) for p in inputs]
    out_dir.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(items)), key=lambda i: -items[i].mel.shape[-1])
    batches = [order[a:a + batch_size] for a in range(0, len(order), batch_size)]
    records: list[dict | None] = [None] * len(items)
    total_seconds = 0.0
    with intra_op_threads(threads) as used_threads:
        bar = tqdm(total=len(items), unit="file", desc="vocoding", disable=not progress)
        for number, batch in enumerate(batches):
            mels = [items[i].mel for i in batch]
            noises = [input_noise(seed, i, items[i].mel.shape[-1] * hop, temperature)
                      for i in batch]
            start = time.perf_counter()
            waves = vocode_batch(vocoder, mels, noises)
            seconds = time.perf_counter() - start
            total_seconds += seconds
            audio_seconds = sum(w.shape[0] for w in waves) / rate
            for i, wave in zip(batch, waves, strict=True):
                records[i] = _write_outputs(items[i], wave, out_dir, logmel, run_dir, info,
                                            metrics)
                records[i].update(batch=number, batch_seconds=seconds,
                                  rtf=seconds / audio_seconds)
            bar.update(len(batch))
            bar.set_postfix(rtf=f"{seconds / audio_seconds:.3f}", refresh=False)
        bar.close()
    audio_total = sum(r["seconds_of_audio"] for r in records)
    summary = {
        "run": str(run_dir), "weights": info["weights"], "step": info["step"], "seed": seed,
        "temperature": temperature, "batch_size": batch_size, "threads": used_threads,
        "sample_rate": rate, "timing": "wall-clock seconds of the model call per batch "
        "(mel and noise in, waveform out); rtf = seconds / seconds of audio generated",
        "files": records,
        "total": {"files": len(records), "seconds_of_audio": audio_total,
                  "seconds": total_seconds, "rtf": total_seconds / audio_total},
    }
    for key in MEAN_KEYS:
        values = [r[key] for r in records if r.get(key) is not None]
        if values:
            summary["total"][f"mean_{key}"] = float(np.mean(values))
    write_json_atomic(summary, out_dir / "metrics.json")
    return summary


def _write_outputs(item: VocodeInput, wave: Tensor, out_dir: Path, logmel: LogMel,
                   run_dir: str | Path, info: dict, metrics: bool) -> dict:
    rate = logmel.config.sample_rate
    wav_path, png_path = out_dir / f"{item.name}.wav", out_dir / f"{item.name}.png"
    write_wav(wave, rate, wav_path, f"{run_dir} on {item.path}")
    written = torch.from_numpy(sf.read(wav_path, dtype="float32")[0])
    top = "ground truth" if item.audio is not None else f"given mel ({item.path.name})"
    with torch.no_grad():
        vocoded_mel = logmel(written[None])[0].numpy()
    mel_panels_png([(top, item.mel.numpy()), ("vocoded", vocoded_mel)],
                   logmel.config.hop_length, rate, png_path,
                   title=f"{item.path.name}: {Path(run_dir).name} step {info['step']}")
    record = {"input": str(item.path), "wav": str(wav_path), "png": str(png_path),
              "frames": item.mel.shape[-1], "samples": wave.shape[0],
              "seconds_of_audio": wave.shape[0] / rate}
    if not metrics:
        return record
    if item.audio is None:
        record["metrics"] = "no reference audio (mel input)"
    elif item.audio.shape[0] < min_metric_samples():
        record["metrics"] = (f"reference of {item.audio.shape[0]} samples is shorter than the "
                             f"{min_metric_samples()} the metrics need")
    else:
        record.update(speech_quality(written, item.audio, rate).to_dict())
    return record


def describe_vocode(summary: dict, out_dir: str | Path) -> str:
    """The one-line summary of :func:`vocode_files`."""
    total = summary["total"]
    line = (f"vocoded {total['files']} file(s), {total['seconds_of_audio']:.2f} s of audio in "
            f"{total['seconds']:.2f} s (real-time factor {total['rtf']:.3f}, "
            f"{summary['threads']} thread(s), batch {summary['batch_size']})")
    if "mean_mcd_db" in total:
        line += (f"; mean MR-STFT {total['mean_mr_stft']:.3f}, LSD {total['mean_lsd_db']:.2f} "
                 f"dB, MCD {total['mean_mcd_db']:.2f} dB")
    return line + f"; wrote {Path(out_dir) / 'metrics.json'}"
