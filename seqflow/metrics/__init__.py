"""Evaluation metrics: waveform quality (``audio``) and probabilistic forecasts (``forecast``).

This package depends on torch, torchaudio, numpy and librosa only; it does not import the
model side of seqflow (transforms, distributions, training).
"""

from seqflow.metrics.audio import (
    F0Metrics,
    PowerSpectra,
    SpeechQuality,
    STFTLossTerms,
    average_power_distance,
    f0_metrics,
    log_spectral_distance,
    mel_cepstra,
    mel_cepstral_distortion,
    multi_resolution_stft_loss,
    multi_resolution_stft_terms,
    power_spectrogram,
    speech_quality,
)
from seqflow.metrics.forecast import (
    ForecastMetrics,
    crps,
    crps_per_variable,
    crps_sum,
    energy_score,
    forecast_metrics,
    interval_coverage,
    mean_crps,
    normalized_crps,
    point_mase,
    seasonal_mase,
    seasonal_scale,
    variable_averaged_crps,
    weighted_quantile_loss,
)

__all__ = [
    "F0Metrics",
    "ForecastMetrics",
    "PowerSpectra",
    "STFTLossTerms",
    "SpeechQuality",
    "average_power_distance",
    "crps",
    "crps_per_variable",
    "crps_sum",
    "energy_score",
    "f0_metrics",
    "forecast_metrics",
    "interval_coverage",
    "log_spectral_distance",
    "mean_crps",
    "mel_cepstra",
    "mel_cepstral_distortion",
    "multi_resolution_stft_loss",
    "multi_resolution_stft_terms",
    "normalized_crps",
    "point_mase",
    "power_spectrogram",
    "seasonal_mase",
    "seasonal_scale",
    "speech_quality",
    "variable_averaged_crps",
    "weighted_quantile_loss",
]
