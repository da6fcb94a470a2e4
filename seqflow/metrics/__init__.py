"""Evaluation metrics: waveform quality (``audio``).

This package depends on torch, torchaudio, numpy and librosa only; it does not import the
model side of seqflow (transforms, distributions, training).
"""

from seqflow.metrics.audio import (
    F0Metrics,
    STFTLossTerms,
    f0_metrics,
    log_spectral_distance,
    mel_cepstra,
    mel_cepstral_distortion,
    multi_resolution_stft_loss,
    multi_resolution_stft_terms,
    power_spectrogram,
)

__all__ = [
    "F0Metrics",
    "STFTLossTerms",
    "f0_metrics",
    "log_spectral_distance",
    "mel_cepstra",
    "mel_cepstral_distortion",
    "multi_resolution_stft_loss",
    "multi_resolution_stft_terms",
    "power_spectrogram",
]
