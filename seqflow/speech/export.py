"""``seqflow export RUN --onnx FILE``: a one-pass run's generator as ONNX, checked and timed.

The exported graph is :class:`~seqflow.speech.vocoder.MelVocoder`: inputs ``mel`` ``(batch,
n_mels, frames)`` and ``z`` ``(batch, 1, frames * hop)``, output ``audio`` ``(batch, 1, frames *
hop)``, with batch and frames dynamic. It is traced with chunking off
(:func:`seqflow.nn.chunking.chunk_values` ``(0)``), so the graph is the plain whole-sequence
one pass with no loop over chunks. Two exporters of torch 2.11 work:

* ``dynamo`` (``torch.onnx.export(..., dynamo=True)``, the default): ``torch.export`` with
  ``frames`` a symbolic dimension and the noise length declared as ``hop * frames``;
* ``torchscript`` (``dynamo=False``): the TorchScript tracer with named dynamic axes; shape
  checks of the Python code run once at trace time (tracer warnings) and are not in the graph.

After export, onnxruntime runs the file on the first utterance of the run's test split (its
log-mel, noise from ``seed``) and the result must equal torch's within ``tolerance`` (absolute,
max over samples); otherwise the file is removed and the export fails. Both engines are then
timed on that input on the same number of intra-op threads (median of ``repeats`` runs after
one warm-up), reported as real-time factors at the run's sample rate.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqflow.nn.chunking import chunk_values
from seqflow.nn.threads import intra_op_threads
from seqflow.nn.timing import median_seconds
from seqflow.speech.vocode import input_noise
from seqflow.speech.vocoder import MelVocoder, load_vocoder
from seqflow.train.audio_data import utterances

EXPORTERS = ("dynamo", "torchscript")
INPUT_NAMES, OUTPUT_NAMES = ["mel", "z"], ["audio"]
OPSET = 18


def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ValueError(f"ONNX export needs the packages onnx and onnxruntime ({err}); "
                         "pip install onnx onnxruntime onnxscript") from None
    return onnx, onnxruntime


def export_vocoder(vocoder: MelVocoder, path: str | Path, exporter: str = "dynamo",
                   example_frames: int = 8) -> None:
    """Write ``vocoder`` as ONNX to ``path`` with dynamic batch and frames.

    ``example_frames`` sizes the example input the exporter traces (any length works: the
    frames axis stays symbolic).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    hop = vocoder.hop_length
    mel = torch.zeros(2, vocoder.n_mels, example_frames)
    z = torch.zeros(2, 1, example_frames * hop)
    with chunk_values(0), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the check follows
        if exporter == "dynamo":
            from torch.export import Dim

            batch, frames = Dim("batch", min=1), Dim("frames", min=2)
            torch.onnx.export(vocoder, (mel, z), str(path), dynamo=True, opset_version=OPSET,
                              input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                              dynamic_shapes={"mel": {0: batch, 2: frames},
                                              "z": {0: batch, 2: hop * frames}},
                              verbose=False)
        else:
            torch.onnx.export(vocoder, (mel, z), str(path), dynamo=False, opset_version=OPSET,
                              input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                              dynamic_axes={"mel": {0: "batch", 2: "frames"},
                                            "z": {0: "batch", 2: "samples"},
                                            "audio": {0: "batch", 2: "samples"}})


def onnx_session(path: str | Path, threads: int):
    """An onnxruntime CPU session on ``threads`` intra-op threads (one inter-op thread)."""
    _, ort = _onnx_modules()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def first_test_utterance(run_dir: str | Path, cfg, seed: int, max_frames: int | None
               ) -> tuple[Tensor, Tensor, str]:
    """``(mel (1, n_mels, frames), z (1, 1, frames * hop), path)`` of the first test utterance."""
    dataset = utterances(cfg, run_dir, "test")
    if len(dataset) == 0:
        raise ValueError(f"{run_dir}: the test split holds no utterance to check the export on")
    item = dataset[0]
    mel = item["context"]
    if max_frames is not None:
        if max_frames < 2:
            raise ValueError(f"--max-frames must be >= 2, got {max_frames}")
        mel = mel[:, :max_frames]
    z = input_noise(seed, 0, mel.shape[-1] * cfg.data.mel.hop_length, 1.0)
    return mel[None].contiguous(), z[None], item["path"]


def export_run(run_dir: str | Path, path: str | Path, weights: str = "auto",
               exporter: str = "dynamo", threads: int | None = None, repeats: int = 5,
               max_frames: int | None = None, seed: int = 0, tolerance: float = 1e-4) -> dict:
    """Export the generator of ``run_dir`` to ``path``, check it and time both engines.

    Returns ``{"onnx", "exporter", "dynamic", "test_file", "frames", "seconds_of_audio",
    "max_abs_error", "tolerance", "threads", "torch_seconds", "onnx_seconds", "torch_rtf",
    "onnx_rtf", "onnx_version", "onnxruntime_version", "weights", "step"}``.
    """
    onnx, ort = _onnx_modules()
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"--repeats must be a positive int, got {repeats!r}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"{path}: the output file must end in .onnx")
    vocoder, _, cfg, info = load_vocoder(run_dir, weights)
    mel, z, test_file = first_test_utterance(run_dir, cfg, seed, max_frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_vocoder(vocoder, path, exporter)
    onnx.checker.check_model(str(path))
    with intra_op_threads(threads) as used:
        session = onnx_session(path, used)
        feeds = {"mel": mel.numpy(), "z": z.numpy()}

        def run_onnx() -> np.ndarray:
            return session.run(None, feeds)[0]

        @torch.no_grad()
        def run_torch() -> Tensor:
            return vocoder(mel, z)

        got, want = run_onnx(), run_torch().numpy()
        if got.shape != want.shape:
            path.unlink(missing_ok=True)
            raise ValueError(f"{path}: onnxruntime returned shape {got.shape}, torch "
                             f"{want.shape}; removed the file")
        error = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
        if not error <= tolerance:
            path.unlink(missing_ok=True)
            raise ValueError(f"{path}: onnxruntime differs from torch by {error:.3g} (max "
                             f"absolute, tolerance {tolerance:g}) on {test_file}; removed the "
                             "file")
        torch_seconds = median_seconds(run_torch, repeats)
        onnx_seconds = median_seconds(run_onnx, repeats)
    audio_seconds = z.shape[-1] / cfg.data.mel.sample_rate
    return {"onnx": str(path), "exporter": exporter,
            "dynamic": "batch and frames (noise and output length hop * frames)",
            "test_file": test_file, "frames": mel.shape[-1], "seconds_of_audio": audio_seconds,
            "max_abs_error": error, "tolerance": tolerance, "threads": used,
            "repeats": repeats, "torch_seconds": torch_seconds, "onnx_seconds": onnx_seconds,
            "torch_rtf": torch_seconds / audio_seconds, "onnx_rtf": onnx_seconds / audio_seconds,
            "torch_version": torch.__version__, "onnx_version": onnx.__version__,
            "onnxruntime_version": ort.__version__, "weights": info["weights"],
            "step": info["step"]}


def describe_export(report: dict) -> str:
    """One line: the file, the check and both speeds."""
    return (f"wrote {report['onnx']} ({report['exporter']} exporter, dynamic "
            f"{report['dynamic']}); onnxruntime equals torch within "
            f"{report['max_abs_error']:.2g} (tolerance {report['tolerance']:g}) on "
            f"{report['test_file']} ({report['seconds_of_audio']:.2f} s); real-time factor on "
            f"{report['threads']} thread(s): torch {report['torch_rtf']:.4f}, onnxruntime "
            f"{report['onnx_rtf']:.4f} (median of {report['repeats']})")
