"""A speech run's one-pass generator as a module: mel and noise in, waveform out.

A sequence IAF (:class:`~seqflow.transforms.SequenceIAF` layers in a
:class:`~seqflow.transforms.SequenceStack`, optionally after the input
:class:`~seqflow.transforms.Scaling` of ``model.input_scale``) generates a waveform in one pass
per layer: ``x = T^{-1}(z; mel)`` with every conditioner reading the noise ``z``, which is all
known up front. A sequence MAF generates by streaming instead (``seqflow sample --mel-from``).

:class:`MelVocoder` is that map alone, ``(mel, z) -> x``, so the same module serves vocoding,
timing and export. Its conditioners are causal in time and the stack's upsampler reads a frame
and its neighbours only through a linear map, so zero frames appended to a mel leave every
earlier output sample unchanged: utterances of different lengths batch by zero padding.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from seqflow.distributions import Flow
from seqflow.train.audio_data import check_mel_model
from seqflow.train.config import Config
from seqflow.train.models import ONE_PASS_KINDS
from seqflow.train.run_dir import load_run
from seqflow.transforms import Transform


class MelVocoder(nn.Module):
    """``(mel (batch, n_mels, frames), z (batch, 1, frames * hop)) -> x (batch, 1, frames * hop)``.

    Args:
        transform: the flow's transform (data -> noise); its ``inverse`` runs here.
        n_mels: mel bands the model reads.
        hop_length: samples per mel frame (the stack's upsampling factor).
    """

    def __init__(self, transform: Transform, n_mels: int, hop_length: int):
        super().__init__()
        self.transform = transform
        self.n_mels = n_mels
        self.hop_length = hop_length

    def forward(self, mel: Tensor, z: Tensor) -> Tensor:
        return self.transform.inverse(z, mel)[0]


def check_one_pass_run(cfg: Config, run_dir: str | Path) -> None:
    """Refuse (one line) a run whose model does not generate audio from a mel in one pass."""
    kind = cfg.model.kind
    if kind == "sequence_maf":
        raise ValueError(f"{run_dir}: model.kind sequence_maf generates by streaming, one sample "
                         f"at a time; use `seqflow sample {run_dir} --mel-from FILE.wav --out "
                         "OUT.wav`")
    if kind not in ONE_PASS_KINDS:
        raise ValueError(f"{run_dir}: model.kind {kind} is not a one-pass mel vocoder (one of "
                         f"{', '.join(ONE_PASS_KINDS)})")
    if cfg.data.source != "audio" or not cfg.model.cond_channels:
        raise ValueError(f"{run_dir}: not a mel-conditioned speech run (data.source="
                         f"{cfg.data.source!r}, model.cond_channels={cfg.model.cond_channels})")
    if cfg.model.num_global_ids:
        raise ValueError(f"{run_dir}: the model also reads global ids (model.num_global_ids="
                         f"{cfg.model.num_global_ids}); vocoding gives a mel only")
    check_mel_model(cfg)


def load_vocoder(run_dir: str | Path, weights: str = "auto"
                 ) -> tuple[MelVocoder, Flow, Config, dict]:
    """The :class:`MelVocoder` of a one-pass speech run (eval mode), its flow, config and the
    weights info of :func:`~seqflow.train.inference.load_run`."""
    flow, cfg, info = load_run(run_dir, weights)
    check_one_pass_run(cfg, run_dir)
    vocoder = MelVocoder(flow.transform, cfg.data.mel.n_mels, cfg.data.mel.hop_length).eval()
    return vocoder, flow, cfg, info
