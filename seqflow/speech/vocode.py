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

Inputs are checked before any model call (:mod:`seqflow.speech.audio_io`): an audio file at
another rate, with several channels or with float samples beyond ``[-1, 1)`` is refused unless
``convert`` (then each conversion is printed and recorded per file as ``"converted"``); every
file's ``"source"`` (rate, channels, frames, subtype) is recorded; a truncated file is refused;
silent, clipped, empty or non-finite files are skipped, named and recorded under ``"skipped"``
with ``seqflow eval --data``'s reasons. A ``.npy`` mel is checked for its units by
:func:`check_log_mel`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from seqflow.data.features import WINDOWS, LogMel, MelConfig
from seqflow.metrics.audio import QUALITY_MIN_SAMPLES, speech_quality
from seqflow.nn.threads import intra_op_threads
from seqflow.speech.audio_io import UnusableAudio, read_audio_input, write_wav
from seqflow.speech.pictures import mel_panels_png
from seqflow.speech.vocoder import MelVocoder, load_vocoder
from seqflow.train.checkpoints import write_json_atomic

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MEL_SUFFIX = ".npy"
# speech_quality's keys averaged over the files in metrics.json's "total" (as mean_<key>)
MEAN_KEYS = ("mr_stft", "lsd_db", "mcd_db", "f0_rmse_hz", "vuv_error_rate", "rms_ratio")


# check_log_mel: the frame-to-frame fluctuation of a mel must reach this fraction of white
# noise's (measured on the Asterisk prompts, clean and with white noise at 0-30 dB SNR: >= 0.84)
MIN_FLUCTUATION_RATIO = 0.7
# check_log_mel: at most this fraction of a mel's values may sit at the floor
MAX_FLOOR_FRACTION = 0.5
# check_log_mel: slack on the floor and ceiling (float32 rounding of a saved mel)
BOUND_SLACK = 1e-3


@dataclass
class VocodeInput:
    """One input: its ``name`` (file stem), log-mel ``mel`` ``(n_mels, frames)`` and, for an
    audio file, the reference ``audio`` ``(frames * hop,)``, the file as found (``source``) and
    the conversions applied (``converted``); for a mel, how it was checked (``mel_check``)."""

    path: Path
    name: str
    mel: Tensor
    audio: Tensor | None
    source: dict | None = None
    converted: list[str] | None = None
    mel_check: str | None = None


def log_mel_ceiling(config: MelConfig) -> float:
    """The largest value :class:`LogMel` can give for audio on ``[-1, 1]``:
    ``ln(sum(window) * max_m sum_k fb[k, m])``, since ``|X_k| <= sum_n w_n`` for every STFT bin
    and a mel band is the ``fb``-weighted sum of the bins' magnitudes."""
    logmel = LogMel(config)
    window = WINDOWS[config.window](config.win_length).double().sum()
    return math.log(float(window * logmel.mel.mel_scale.fb.double().sum(dim=0).max()))


def _fluctuation(mel: np.ndarray, floor: float) -> float | None:
    """Median ``|mel[:, t + 1] - mel[:, t]|`` over pairs not both at ``floor`` (None if none)."""
    diff = np.abs(np.diff(mel, axis=1))
    at_floor = mel <= floor + BOUND_SLACK
    keep = ~(at_floor[:, 1:] & at_floor[:, :-1])
    return float(np.median(diff[keep])) if keep.any() else None


@functools.lru_cache(maxsize=8)
def noise_fluctuation(config: MelConfig) -> float:
    """:func:`_fluctuation` of :class:`LogMel` of white noise (400 frames, seeded): in the
    natural log it is the same at every noise level, so it is the least frame-to-frame change
    a log-mel of any recording (which always has a noise floor) shows."""
    noise = np.random.default_rng(0).standard_normal(400 * config.hop_length) * 0.01
    with torch.no_grad():
        mel = LogMel(config)(torch.from_numpy(noise.astype(np.float32))[None])[0].double()
    return _fluctuation(mel.numpy(), math.log(config.log_floor))


def check_log_mel(array: np.ndarray, config: MelConfig, path: str | Path) -> str:
    """Refuse a mel ``(n_mels, frames)`` that is not :class:`LogMel`'s unit; return what was
    checked.

    LogMel gives ``ln(max(mel, log_floor))`` of the *magnitude* (power 1) Slaney mel spectrum.
    Three tests follow from that definition; what they catch was measured on mels of the
    Asterisk prompts and of synthetic voiced signals converted to other units:

    * floor: no value below ``ln(log_floor)`` (-11.51 for 1e-5). Refuses dB mels
      (``10 log10`` of power floored at 1e-10 reaches -100) and natural-log power mels with a
      lower floor (``ln(1e-10)`` = -23).
    * ceiling: no value above :func:`log_mel_ceiling` (3.53 for the 80-band, 1024-point
      default), the most any waveform on ``[-1, 1]`` can give. Refuses positive dB scales
      (e.g. ``20 log10(mel) + 100``).
    * floor fraction: at most :data:`MAX_FLOOR_FRACTION` of the values at the floor. A
      magnitude mel of 16-bit audio reaches 1e-5 only in digital silence (none of the Asterisk
      prompts has a value there); a power mel floored at 1e-5 puts there everything below
      ``sqrt(1e-5)`` in magnitude: 27-53 % of the values of clean speech.
    * fluctuation: the median frame-to-frame change (:func:`_fluctuation`) at least
      :data:`MIN_FLUCTUATION_RATIO` times :func:`noise_fluctuation`. Speech in the natural log
      never changed less than 0.84 times white noise's (every 10th Asterisk prompt, clean and
      with white noise at 0 to 30 dB SNR, 16 and 80 bands); ``log10`` divides it by 2.30, which
      refuses log10 mels of noisy speech; a log10 mel of clean, highly dynamic speech
      (0.5-1.2 times) can pass.

    Not detectable from the values: ``log10`` of power (0.87 times the natural log of the
    magnitude) and another hop (the band count is checked by shape, the frame count has no
    audio to be compared with).
    """
    floor = math.log(config.log_floor)
    low, high = float(array.min()), float(array.max())
    expected = (f"expected the natural log of the magnitude (power 1) Slaney mel, floored at "
                f"log_floor={config.log_floor:g} (ln = {floor:.2f})")
    skip = "; pass --no-mel-check if it is one"
    if low < floor - BOUND_SLACK:
        raise ValueError(f"{path}: mel minimum {low:.4g} is below ln(log_floor) = {floor:.2f}; "
                         f"{expected} (a dB or differently floored mel?){skip}")
    ceiling = log_mel_ceiling(config)
    if high > ceiling + BOUND_SLACK:
        raise ValueError(f"{path}: mel maximum {high:.4g} is above {ceiling:.2f}, the most "
                         f"audio on [-1, 1] can give; {expected} (a dB mel?){skip}")
    at_floor = float(np.mean(array <= floor + BOUND_SLACK))
    if at_floor > MAX_FLOOR_FRACTION:
        raise ValueError(f"{path}: {at_floor:.0%} of the mel's values sit at ln(log_floor) = "
                         f"{floor:.2f} (more than {MAX_FLOOR_FRACTION:.0%}); {expected} (a "
                         f"power mel floored at {config.log_floor:g}, or mostly digital "
                         f"silence?){skip}")
    fluctuation = _fluctuation(array.astype(np.float64), floor) if array.shape[1] > 1 else None
    reference = noise_fluctuation(config)
    if fluctuation is not None and fluctuation < MIN_FLUCTUATION_RATIO * reference:
        raise ValueError(f"{path}: median frame-to-frame change of the mel {fluctuation:.4g} is "
                         f"{fluctuation / reference:.2f} times white noise's {reference:.4g} "
                         f"(speech: >= {MIN_FLUCTUATION_RATIO}); {expected} (a log10 mel?)"
                         f"{skip}")
    change = "n/a (1 frame)" if fluctuation is None else f"{fluctuation / reference:.2f}"
    return (f"passed: min {low:.3f} >= {floor:.2f}, max {high:.3f} <= {ceiling:.2f}, "
            f"{at_floor:.1%} at the floor, frame-to-frame change {change} x white noise's")


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


def read_input(path: str | Path, logmel: LogMel, convert: bool = False,
               mel_check: bool = True) -> VocodeInput:
    """An audio file (wav/flac/ogg, read by :func:`~seqflow.speech.audio_io.read_audio_input`,
    which raises :class:`~seqflow.speech.audio_io.UnusableAudio` for a silent or clipped file)
    or a ``.npy`` log-mel (checked by :func:`check_log_mel` unless ``mel_check`` is False) as a
    :class:`VocodeInput`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == MEL_SUFFIX:
        mel = read_mel_npy(path, logmel.n_mels)
        checked = (check_log_mel(mel.numpy(), logmel.config, path) if mel_check else
                   "not checked (--no-mel-check): the units of this mel are the user's word")
        return VocodeInput(path, path.stem, mel, None, mel_check=checked)
    if suffix not in AUDIO_SUFFIXES:
        raise ValueError(f"{path}: unknown input type {path.suffix!r}; give audio "
                         f"({', '.join(AUDIO_SUFFIXES)}) or a log-mel {MEL_SUFFIX}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    item = read_audio_input(path, logmel, convert)
    return VocodeInput(path, path.stem, item.mel[0], item.audio, item.source, item.converted)


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
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a directory; give a directory "
                         "for the wavs, pictures and metrics.json")
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
                 progress: bool = True, convert: bool = False, mel_check: bool = True,
                 report: Callable[[str], None] | None = None) -> dict:
    """Vocode ``inputs`` with the one-pass model of ``run_dir`` into ``out_dir``.

    Returns (and writes as ``out_dir/metrics.json``) ``{"run", "weights", "step", "seed",
    "temperature", "batch_size", "threads", "sample_rate", "convert", "files": [...],
    "skipped": [...], "total": {...}}``; ``files`` follow the order of ``inputs`` less the
    skipped ones (``{"input", "reason", "detail"}``). ``convert`` allows resampling, mixing down
    and clipping (see the module docstring); ``report`` gets one line per conversion and per
    skipped file as they happen (default: none).
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
    report = report if report is not None else (lambda line: None)
    items, skipped = [], []
    for p in inputs:
        try:
            item = read_input(p, logmel, convert, mel_check)
        except UnusableAudio as err:
            skipped.append({"input": str(p), "reason": err.reason, "detail": err.detail})
            report(f"{p}: skipped ({err.reason}: {err.detail}), as seqflow eval --data skips it")
            continue
        if item.converted:
            report(f"{p}: {'; '.join(item.converted)}")
        if not mel_check and item.mel_check is not None:
            report(f"{p}: mel units not checked (--no-mel-check)")
        items.append(item)
    if not items:
        named = "; ".join(f"{s['input']} ({s['reason']}: {s['detail']})" for s in skipped)
        raise ValueError(f"no input left to vocode: skipped {named}")
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
        "sample_rate": rate, "convert": convert,
        "timing": "wall-clock seconds of the model call per batch "
        "(mel and noise in, waveform out); rtf = seconds / seconds of audio generated",
        "files": records, "skipped": skipped,
        "total": {"files": len(records), "skipped": len(skipped), "seconds_of_audio": audio_total,
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
    if item.source is not None:
        record.update(source=item.source, converted=item.converted)
    if item.mel_check is not None:
        record["mel_check"] = item.mel_check
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
    skipped = f" (skipped {total['skipped']})" if total.get("skipped") else ""
    line = (f"vocoded {total['files']} file(s){skipped}, {total['seconds_of_audio']:.2f} s of "
            f"audio in "
            f"{total['seconds']:.2f} s (real-time factor {total['rtf']:.3f}, "
            f"{summary['threads']} thread(s), batch {summary['batch_size']})")
    if "mean_mcd_db" in total:
        line += (f"; mean MR-STFT {total['mean_mr_stft']:.3f}, LSD {total['mean_lsd_db']:.2f} "
                 f"dB, MCD {total['mean_mcd_db']:.2f} dB")
    return line + f"; wrote {Path(out_dir) / 'metrics.json'}"
