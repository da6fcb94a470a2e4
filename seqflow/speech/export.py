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

The file is self-contained when its initializers (the weights) take at most
:data:`ONE_FILE_BYTES` (1 GiB, half of protobuf's 2 GiB message limit, leaving room for the
graph); a larger model keeps them in ``NAME.onnx.data`` beside ``NAME.onnx``, and the report
names both files. The model's ``metadata_props`` carry what a user of the file needs to build
its inputs (:func:`vocoder_metadata`): sample rate, hop, every mel setting (and ``mel``, all of
them as JSON), how the log-mel is computed, the audio scale and the model's ``input_scale``.

After export, onnxruntime runs the file on the first utterance of the run's test split (its
log-mel, noise from ``seed``) and the result must equal torch's within ``tolerance`` (absolute,
max over samples); otherwise the file is removed and the export fails. Only the run directory
is needed: when the training corpus cannot be read, the check runs on the log-mel of a
synthetic harmonic tone (:func:`synthetic_tone`) instead, and the report says so and why. Both
engines are then timed on that input on the same number of intra-op threads (median of
``repeats`` runs after one warm-up), reported as real-time factors at the run's sample rate.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqflow.checks import check_output_path
from seqflow.data.features import LogMel
from seqflow.nn.chunking import chunk_values
from seqflow.nn.threads import intra_op_threads
from seqflow.nn.timing import median_seconds
from seqflow.speech.vocode import input_noise
from seqflow.speech.vocoder import MelVocoder, load_vocoder
from seqflow.train.audio_data import utterances
from seqflow.train.config import Config

EXPORTERS = ("dynamo", "torchscript")
INPUT_NAMES, OUTPUT_NAMES = ["mel", "z"], ["audio"]
OPSET = 18
ONE_FILE_BYTES = 1 << 30
AUDIO_SCALE = "audio on [-1, 1): 16-bit code k -> k / 32768"
SYNTHETIC_SECONDS = 1.0


def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ValueError(f"ONNX export needs the packages onnx and onnxruntime ({err}); "
                         "pip install onnx onnxruntime onnxscript") from None
    return onnx, onnxruntime


def vocoder_metadata(cfg: Config, info: dict) -> dict[str, str]:
    """The settings a user of the exported file needs, as ONNX ``metadata_props`` (strings).

    Keys: every :class:`~seqflow.data.features.MelConfig` field (``sample_rate``,
    ``hop_length``, ``n_fft``, ``win_length``, ``window``, ``n_mels``, ``f_min``, ``f_max``,
    ``log_floor``), ``mel`` (all of them as JSON), ``mel_definition``, ``audio_scale``,
    ``input_scale``, ``inputs``, ``outputs``, ``model_kind``, ``step`` and ``weights``.
    """
    mel = cfg.data.mel
    left, right = mel.padding
    meta = {name: str(value) for name, value in mel.to_dict().items()}
    meta.update({
        "mel": json.dumps(mel.to_dict(), sort_keys=True),
        "mel_definition": (f"natural log of max(mel, log_floor) of torchaudio MelSpectrogram "
                           f"(power 1, slaney mel scale and norm, center=False) after reflect "
                           f"padding {left} samples left and {right} right; frames = samples "
                           f"// hop_length"),
        "audio_scale": AUDIO_SCALE,
        "input_scale": str(cfg.model.input_scale),
        "input_scale_meaning": ("the model's learned input scaling starts as x / input_scale; "
                                "it is inside the graph, so audio is on audio_scale"),
        "inputs": ("mel: float32 (batch, n_mels, frames) log-mel; z: float32 (batch, 1, frames "
                   "* hop_length) noise from N(0, temperature^2), temperature 1 as trained"),
        "outputs": "audio: float32 (batch, 1, frames * hop_length) on audio_scale",
        "model_kind": cfg.model.kind,
        "step": str(info["step"]),
        "weights": str(info["weights"]),
    })
    return meta


def export_vocoder(vocoder: MelVocoder, path: str | Path, exporter: str = "dynamo",
                   example_frames: int = 8, metadata: dict[str, str] | None = None
                   ) -> list[Path]:
    """Write ``vocoder`` as ONNX to ``path`` with dynamic batch and frames; returns the files
    written: ``[path]``, or ``[path, path.onnx.data]`` when the initializers exceed
    :data:`ONE_FILE_BYTES`.

    ``example_frames`` sizes the example input the exporter traces (any length works: the
    frames axis stays symbolic). ``metadata`` goes into the model's ``metadata_props``. A
    ``NAME.onnx.data`` left beside ``path`` by an earlier export is replaced or removed.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    onnx, _ = _onnx_modules()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        traced = Path(scratch) / "model.onnx"  # the exporter may write model.onnx.data too
        _trace(vocoder, traced, exporter, example_frames)
        model = onnx.load(str(traced))
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = path.with_name(path.name + ".data")
    stale = data.is_file()
    data.unlink(missing_ok=True)  # onnx appends to an existing external-data file
    weights = sum(tensor.ByteSize() for tensor in model.graph.initializer)
    if weights <= ONE_FILE_BYTES:
        onnx.save_model(model, str(path))
        if stale:
            warnings.warn(f"removed {data}: an earlier export's weights for {path}, which is "
                          "now one self-contained file", stacklevel=2)
        return [path]
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name)
    return [path, data]


def _trace(vocoder: MelVocoder, path: Path, exporter: str, example_frames: int) -> None:
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


def synthetic_tone(sample_rate: int, seconds: float = SYNTHETIC_SECONDS) -> Tensor:
    """A vowel-like test signal ``(time,)`` on ``[-1, 1)``: harmonics 1 to 4 of a 150 Hz F0
    with a 5 Hz, 10 Hz-deep vibrato under a half-sine loudness envelope, peak below 0.25."""
    t = torch.arange(int(round(seconds * sample_rate)), dtype=torch.float64) / sample_rate
    f0 = 150.0 + 10.0 * torch.sin(2 * math.pi * 5.0 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    wave = sum(torch.sin(k * phase) / k for k in range(1, 5)) / 2.1
    return (0.25 * torch.sin(math.pi * t / seconds) * wave).float()


def check_input(run_dir: str | Path, cfg: Config, seed: int, max_frames: int | None
                ) -> tuple[Tensor, Tensor, str | None, str]:
    """``(mel (1, n_mels, frames), z (1, 1, frames * hop), test file or None, what it is)``.

    The first utterance of the run's test split, or, when the training corpus cannot be read,
    the log-mel of :func:`synthetic_tone` (the last item says which, and why).
    """
    if max_frames is not None and max_frames < 2:
        raise ValueError(f"--max-frames must be >= 2, got {max_frames}")
    mel_config = cfg.data.mel
    try:
        dataset = utterances(cfg, run_dir, "test")
        if len(dataset) == 0:
            raise ValueError("the test split holds no usable utterance")
        item = dataset[0]
        mel, test_file = item["context"], item["path"]
        what = test_file
    except (ValueError, OSError) as err:
        reason = " ".join(str(err).split())
        audio = synthetic_tone(mel_config.sample_rate)
        with torch.no_grad():
            mel = LogMel(mel_config)(audio[None])[0]
        test_file = None
        what = (f"a {SYNTHETIC_SECONDS:g} s synthetic tone (the training corpus "
                f"{cfg.data.path} is not readable: {reason})")
    if max_frames is not None:
        mel = mel[:, :max_frames]
    z = input_noise(seed, 0, mel.shape[-1] * mel_config.hop_length, 1.0)
    return mel[None].contiguous(), z[None], test_file, what


def export_run(run_dir: str | Path, path: str | Path, weights: str = "auto",
               exporter: str = "dynamo", threads: int | None = None, repeats: int = 5,
               max_frames: int | None = None, seed: int = 0, tolerance: float = 1e-4) -> dict:
    """Export the generator of ``run_dir`` to ``path``, check it and time both engines.

    Returns ``{"onnx", "files", "exporter", "dynamic", "test_file", "check_input", "frames",
    "seconds_of_audio", "max_abs_error", "tolerance", "threads", "torch_seconds",
    "onnx_seconds", "torch_rtf", "onnx_rtf", "onnx_version", "onnxruntime_version", "weights",
    "step", "metadata"}``; ``files`` lists every file written, ``test_file`` is None when the
    check ran on a synthetic tone.
    """
    onnx, ort = _onnx_modules()
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"--repeats must be a positive int, got {repeats!r}")
    path = check_output_path(path, "--onnx", (".onnx",))
    vocoder, _, cfg, info = load_vocoder(run_dir, weights)
    mel, z, test_file, what = check_input(run_dir, cfg, seed, max_frames)
    metadata = vocoder_metadata(cfg, info)
    files = export_vocoder(vocoder, path, exporter, metadata=metadata)

    def refuse(reason: str) -> ValueError:
        for file in files:
            file.unlink(missing_ok=True)
        return ValueError(f"{path}: {reason}; removed {' and '.join(map(str, files))}")

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
            raise refuse(f"onnxruntime returned shape {got.shape}, torch {want.shape}")
        error = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
        if not error <= tolerance:
            raise refuse(f"onnxruntime differs from torch by {error:.3g} (max absolute, "
                         f"tolerance {tolerance:g}) on {what}")
        torch_seconds = median_seconds(run_torch, repeats)
        onnx_seconds = median_seconds(run_onnx, repeats)
    audio_seconds = z.shape[-1] / cfg.data.mel.sample_rate
    return {"onnx": str(path), "files": [str(f) for f in files], "exporter": exporter,
            "dynamic": "batch and frames (noise and output length hop * frames)",
            "test_file": test_file, "check_input": what, "frames": mel.shape[-1],
            "seconds_of_audio": audio_seconds, "max_abs_error": error, "tolerance": tolerance,
            "threads": used, "repeats": repeats, "torch_seconds": torch_seconds,
            "onnx_seconds": onnx_seconds, "torch_rtf": torch_seconds / audio_seconds,
            "onnx_rtf": onnx_seconds / audio_seconds, "torch_version": torch.__version__,
            "onnx_version": onnx.__version__, "onnxruntime_version": ort.__version__,
            "weights": info["weights"], "step": info["step"], "metadata": metadata}


def describe_export(report: dict) -> str:
    """One line: every file written, the settings it carries, the check and both speeds."""
    files = report["files"]
    wrote = (f"wrote {files[0]} (one self-contained file)" if len(files) == 1 else
             f"wrote {' and '.join(files)} (weights over {ONE_FILE_BYTES >> 20} MiB live in the "
             "second file: keep them together)")
    meta = report["metadata"]
    return (f"{wrote}, {report['exporter']} exporter, dynamic {report['dynamic']}; metadata: "
            f"sample_rate {meta['sample_rate']}, hop_length {meta['hop_length']}, n_mels "
            f"{meta['n_mels']}, input_scale {meta['input_scale']} and the other mel settings; "
            f"onnxruntime equals torch within {report['max_abs_error']:.2g} (tolerance "
            f"{report['tolerance']:g}) on {report['check_input']} "
            f"({report['seconds_of_audio']:.2f} s); real-time factor on {report['threads']} "
            f"thread(s): torch {report['torch_rtf']:.4f}, onnxruntime {report['onnx_rtf']:.4f} "
            f"(median of {report['repeats']})")
