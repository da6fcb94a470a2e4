"""Applications of a finished speech run: sample from a mel, vocode, evaluate, export.

A speech run is trained by the engine (:mod:`seqflow.train`) on the ``audio`` data source; this
package only reads run directories: it streams a teacher's waveform from a log-mel
(:func:`sample_from_mel_file`), vocodes mels in one pass with a student (:func:`vocode_files`),
writes a listening page beside vocoded wavs (:func:`write_listening_page`), scores a run on
held-out utterances (:func:`evaluate_audio_run`, :func:`evaluate_distill_run`) and exports a
student to ONNX (:func:`export_run`).
"""

from seqflow.nn.threads import intra_op_threads  # re-exported: recipes time under it
from seqflow.speech.audio_io import mel_of_audio_file, write_wav
from seqflow.speech.distill_eval import describe_distill, evaluate_distill_run, is_distill_run
from seqflow.speech.evaluate import (
    bits_per_16bit_sample,
    describe_eval,
    evaluate_audio_run,
    flow_log_prob,
    results_name,
    score_utterances,
    summarize,
)
from seqflow.speech.export import describe_export, export_run, export_vocoder
from seqflow.speech.listening import write_listening_page
from seqflow.speech.pictures import mel_panels_png, spectrogram_png
from seqflow.speech.sample import Synthesis, sample_from_mel_file, stream_from_mel
from seqflow.speech.vocode import describe_vocode, input_noise, vocode_files
from seqflow.speech.vocoder import MelVocoder, load_vocoder

__all__ = [
    "MelVocoder",
    "Synthesis",
    "bits_per_16bit_sample",
    "describe_distill",
    "describe_eval",
    "describe_export",
    "describe_vocode",
    "evaluate_audio_run",
    "evaluate_distill_run",
    "export_run",
    "export_vocoder",
    "flow_log_prob",
    "input_noise",
    "intra_op_threads",
    "is_distill_run",
    "load_vocoder",
    "mel_of_audio_file",
    "mel_panels_png",
    "results_name",
    "sample_from_mel_file",
    "score_utterances",
    "spectrogram_png",
    "stream_from_mel",
    "summarize",
    "vocode_files",
    "write_listening_page",
    "write_wav",
]
