"""Waveforms from a mel-conditioned sequence MAF: streamed sampling with progress and timing.

:func:`stream_from_mel` is :meth:`~seqflow.distributions.Flow.sample` of one waveform under a
progress bar: :func:`~seqflow.nn.streaming.stream_progress` has the streaming driver report
every chunk of samples, and the bar shows the real-time factor so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from seqflow.checks import check_output_path
from seqflow.data.features import LogMel
from seqflow.distributions import Flow
from seqflow.nn.streaming import stream_progress
from seqflow.speech.audio_io import mel_of_audio_file, write_wav
from seqflow.speech.pictures import spectrogram_png
from seqflow.train.audio_data import check_mel_model
from seqflow.train.models import ONE_PASS_KINDS
from seqflow.train.run_dir import load_run


@dataclass
class Synthesis:
    """A streamed waveform ``audio`` ``(time,)``, the wall-clock ``seconds`` it took and the
    real-time factor ``rtf`` (compute seconds per second of audio; < 1 is faster than real
    time)."""

    audio: Tensor
    seconds: float
    rtf: float


@torch.no_grad()
def stream_from_mel(flow: Flow, mel: Tensor, sample_rate: int, seed: int = 0,
                    chunk: int = 4000, progress: bool = True) -> Synthesis:
    """Sample ``x ~ p(x | mel)`` with :meth:`Flow.sample` under a progress bar.

    Args:
        flow: a mel-conditioned sequence flow (a sequence MAF streams, an IAF runs one pass).
        mel: ``(1, n_mels, frames)`` local features.
        sample_rate: samples per second of the output (for the real-time factor).
        seed: seeds the base noise ``z ~ N(0, I)`` ``(1, channels, frames * hop)``.
        chunk: samples generated between progress updates (does not change the result).
    """
    if mel.dim() != 3 or mel.shape[0] != 1:
        raise ValueError(f"stream_from_mel: expected mel (1, n_mels, frames), got "
                         f"{tuple(mel.shape)}")
    ref = next(flow.parameters())
    mel = mel.to(ref)
    length = flow.length(mel, None)
    if length is None:
        raise ValueError("stream_from_mel: the flow takes no mel context (a mel-conditioned "
                         "sequence flow is needed: model.cond_channels > 0)")
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with tqdm(total=length, unit="sample", unit_scale=True, desc="streaming",
              disable=not progress) as bar:
        done = 0

        def report(steps: int) -> None:
            nonlocal done
            done += steps
            bar.update(steps)
            elapsed = time.perf_counter() - start
            bar.set_postfix(rtf=f"{elapsed / (done / sample_rate):.2f}", refresh=False)

        with stream_progress(report, chunk):
            audio = flow.sample(1, mel, generator=generator)
    seconds = time.perf_counter() - start
    return Synthesis(audio[0, 0].cpu(), seconds, seconds / (length / sample_rate))


def sample_from_mel_file(run_dir: str | Path, wav: str | Path, out: str | Path, seed: int = 0,
                         weights: str = "auto", png: str | Path | None = None,
                         progress: bool = True) -> dict:
    """Stream a waveform from ``wav``'s log-mel with a speech run's teacher.

    Writes ``out`` (16-bit PCM via soundfile; its folder is created) and ``png`` (default:
    ``out`` with ``.png``): ground-truth vs sampled spectrograms; both paths are checked before
    the run is loaded. Returns ``{"out", "png", "seconds_of_audio", "seconds", "rtf",
    "one_pass", "weights", "step"}``; ``one_pass`` is true for a one-pass kind (sequence IAF),
    which generates without streaming.
    """
    out = check_output_path(out, "--out", (".wav",))
    png = check_output_path(png if png is not None else out.with_suffix(".png"),
                            "the spectrogram PNG", (".png",))
    flow, cfg, info = load_run(run_dir, weights)
    if not cfg.model.cond_channels:
        raise ValueError(f"{run_dir}: the model takes no mel context (model.cond_channels=0); "
                         "--mel-from needs a mel-conditioned run")
    check_mel_model(cfg)
    logmel = LogMel(cfg.data.mel)
    rate = cfg.data.mel.sample_rate
    audio, mel = mel_of_audio_file(wav, logmel)
    result = stream_from_mel(flow, mel, rate, seed=seed, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    png.parent.mkdir(parents=True, exist_ok=True)
    write_wav(result.audio, rate, out, str(run_dir))
    spectrogram_png(audio, result.audio, logmel, png,
                    title=f"{Path(wav).name}: {Path(run_dir).name} step {info['step']}")
    return {"out": str(out), "png": str(png), "seconds_of_audio": audio.shape[0] / rate,
            "seconds": result.seconds, "rtf": result.rtf,
            "one_pass": cfg.model.kind in ONE_PASS_KINDS, "weights": info["weights"],
            "step": info["step"]}
