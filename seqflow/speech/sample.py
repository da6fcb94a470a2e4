"""Waveforms from a mel-conditioned sequence MAF: streamed sampling with progress and timing.

:func:`stream_from_mel` upsamples the mel once, then runs the stack's sequential direction
(:func:`seqflow.transforms.autoregressive.sequential`) chunk by chunk. Each chunk is primed
with the last ``receptive_field - 1`` generated samples and the matching slice of the
sample-rate context: the stack's output at time ``t`` reads only the inputs and context in
``t - receptive_field + 1 .. t``, so the chunked result equals one uninterrupted stream while
the progress bar and the real-time factor update between chunks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from seqflow.data.features import LogMel
from seqflow.distributions import Flow
from seqflow.nn.context import SequenceContext
from seqflow.speech.audio_io import mel_of_audio_file, write_wav
from seqflow.speech.pictures import spectrogram_png
from seqflow.train.audio_data import check_mel_model, mel_config
from seqflow.train.run_dir import load_run
from seqflow.transforms import Compose, Scaling, SequenceStack, Transform
from seqflow.transforms.autoregressive import sequential


@dataclass
class Synthesis:
    """A streamed waveform ``audio`` ``(time,)``, the wall-clock ``seconds`` it took and the
    real-time factor ``rtf`` (compute seconds per second of audio; < 1 is faster than real
    time)."""

    audio: Tensor
    seconds: float
    rtf: float


def split_input_scaling(transform: Transform) -> tuple[Scaling | None, Transform]:
    """``(scaling, stack)`` of ``Compose([Scaling, stack])`` (the ``model.input_scale``
    layout), or ``(None, transform)``."""
    if (isinstance(transform, Compose) and len(transform) == 2
            and isinstance(transform.transforms[0], Scaling)):
        return transform.transforms[0], transform.transforms[1]
    return None, transform


@torch.no_grad()
def stream_from_mel(flow: Flow, mel: Tensor, sample_rate: int, seed: int = 0,
                    chunk: int = 4000, progress: bool = True) -> Synthesis:
    """Sample ``x ~ p(x | mel)`` from a sequence-MAF flow by streaming, chunk by chunk.

    Args:
        flow: a :class:`~seqflow.distributions.Flow` over a :class:`SequenceStack` of MAF layers
            with a local-feature upsampler, optionally after an input :class:`Scaling`.
        mel: ``(1, n_mels, frames)`` local features.
        sample_rate: samples per second of the output (for the real-time factor).
        seed: seeds the base noise ``z ~ N(0, I)`` ``(1, channels, frames * hop)``.
        chunk: samples generated between progress updates (does not change the result).
    """
    scaling, stack = split_input_scaling(flow.transform)
    if not isinstance(stack, SequenceStack) or stack.side != "data" or stack.upsampler is None:
        raise ValueError("stream_from_mel: needs a flow over a SequenceStack of SequenceMAF "
                         "layers with local conditioning (model.kind: sequence_maf, "
                         "cond_channels > 0)")
    if mel.dim() != 3 or mel.shape[0] != 1:
        raise ValueError(f"stream_from_mel: expected mel (1, n_mels, frames), got "
                         f"{tuple(mel.shape)}")
    if chunk <= 0:
        raise ValueError(f"stream_from_mel: chunk must be positive, got {chunk}")
    ref = next(flow.parameters())
    local = stack.upsampler(mel.to(ref))  # (1, n_mels, T) at the sample rate
    length = local.shape[-1]
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(1, stack.channels, length, generator=generator).to(ref)
    history = stack.receptive_field - 1
    layers = list(stack.layers)
    out = torch.empty_like(z)
    start = time.perf_counter()
    bar = tqdm(total=length, unit="sample", unit_scale=True, desc="streaming",
               disable=not progress)
    for a in range(0, length, chunk):
        b = min(length, a + chunk)
        h0 = max(0, a - history)
        context = SequenceContext(local[..., h0:b], None)
        past = out[..., h0:a] if a > h0 else None
        out[..., a:b] = sequential(layers, z[..., a:b], context, past)[0]
        elapsed = time.perf_counter() - start
        bar.update(b - a)
        bar.set_postfix(rtf=f"{elapsed / (b / sample_rate):.2f}", refresh=False)
    bar.close()
    if scaling is not None:
        out = scaling.inverse(out)[0]
    seconds = time.perf_counter() - start
    return Synthesis(out[0, 0].cpu(), seconds, seconds / (length / sample_rate))


def sample_from_mel_file(run_dir: str | Path, wav: str | Path, out: str | Path, seed: int = 0,
                         weights: str = "auto", png: str | Path | None = None,
                         progress: bool = True) -> dict:
    """Stream a waveform from ``wav``'s log-mel with a speech run's teacher.

    Writes ``out`` (16-bit PCM via soundfile) and ``png`` (default: ``out`` with ``.png``):
    ground-truth vs sampled spectrograms. Returns ``{"out", "png", "seconds_of_audio",
    "seconds", "rtf", "weights", "step"}``.
    """
    flow, cfg, info = load_run(run_dir, weights)
    if not cfg.model.cond_channels:
        raise ValueError(f"{run_dir}: the model takes no mel context (model.cond_channels=0); "
                         "--mel-from needs a mel-conditioned run")
    check_mel_model(cfg)
    logmel = LogMel(mel_config(cfg.data))
    rate = cfg.data.sample_rate
    audio, mel = mel_of_audio_file(wav, logmel)
    result = stream_from_mel(flow, mel, rate, seed=seed, progress=progress)
    out, png = Path(out), Path(png) if png is not None else Path(out).with_suffix(".png")
    write_wav(result.audio, rate, out, str(run_dir))
    spectrogram_png(audio, result.audio, logmel, png,
                    title=f"{Path(wav).name}: {Path(run_dir).name} step {info['step']}")
    return {"out": str(out), "png": str(png), "seconds_of_audio": audio.shape[0] / rate,
            "seconds": result.seconds, "rtf": result.rtf, "weights": info["weights"],
            "step": info["step"]}
