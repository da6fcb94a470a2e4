"""Waveform quality metrics for vocoders: multi-resolution STFT loss, LSD, MCD and F0 errors.

:func:`speech_quality` is the one speech-quality record (:class:`SpeechQuality`, one key set,
one fixed choice of analysis settings) that every caller reports. The STFT-based functions
take batched waveforms of shape ``(batch, time)`` as torch tensors and are differentiable;
:class:`PowerSpectra` computes the STFTs of a prediction and its reference once, for callers
that derive several terms from them; :func:`f0_metrics` takes single numpy waveforms and
returns floats. Every
spectrogram is computed with a periodic Hann window and centred frames (reflect padding of
``n_fft // 2`` on both sides), so ``time`` must exceed ``n_fft // 2``.

Prediction and reference are compared frame by frame: a vocoder's output is time-aligned with
its reference, so no dynamic time warping is applied anywhere in this module.

References:
    R. Yamamoto, E. Song, J.-M. Kim, "Parallel WaveGAN: A fast waveform generation model based on
    generative adversarial networks with multi-resolution spectrogram", ICASSP 2020.
    S. O. Arik, H. Jun, G. Diamos, "Fast spectrogram inversion using multi-head convolutional
    neural networks", IEEE Signal Processing Letters 2019 (spectral convergence, log-magnitude
    loss).
    W. Ping, K. Peng, J. Chen, "ClariNet: Parallel wave generation in end-to-end text-to-speech",
    ICLR 2019.
    R. Kubichek, "Mel-cepstral distance measure for objective speech quality assessment",
    IEEE PACRIM 1993.
    M. Mauch, S. Dixon, "pYIN: A fundamental frequency estimator using probabilistic threshold
    distributions", ICASSP 2014.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

Resolution = tuple[int, int, int]
DEFAULT_RESOLUTIONS: tuple[Resolution, ...] = (
    (512, 128, 512),
    (1024, 256, 1024),
    (2048, 512, 2048),
)


def _check_waveforms(pred: Tensor, target: Tensor, n_fft: int) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"{name} must have shape (batch, time), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {x.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    if pred.shape[1] <= n_fft // 2:
        raise ValueError(
            f"time length {pred.shape[1]} must exceed n_fft // 2 = {n_fft // 2} for reflect padding"
        )


def _check_stft_args(n_fft: int, hop_length: int, win_length: int) -> None:
    if n_fft < 2 or hop_length < 1 or not 1 <= win_length <= n_fft:
        raise ValueError(
            f"need n_fft >= 2, hop_length >= 1 and 1 <= win_length <= n_fft; "
            f"got n_fft={n_fft}, hop_length={hop_length}, win_length={win_length}"
        )


def power_spectrogram(x: Tensor, n_fft: int, hop_length: int, win_length: int | None = None
                      ) -> Tensor:
    """Squared STFT magnitude ``|X(t, f)|^2`` with a periodic Hann window and centred frames.

    Args:
        x: waveforms ``(batch, time)``.
        n_fft: FFT size; the window of ``win_length`` samples is zero-padded to it in the middle.
        hop_length: frame shift in samples.
        win_length: window length, ``n_fft`` when ``None``.

    Returns:
        ``(batch, n_fft // 2 + 1, 1 + time // hop_length)`` power spectrogram.
    """
    win_length = n_fft if win_length is None else win_length
    _check_stft_args(n_fft, hop_length, win_length)
    window = torch.hann_window(win_length, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return spec.real.square() + spec.imag.square()


@dataclass(frozen=True)
class STFTLossTerms:
    """Per-resolution, per-example terms of the multi-resolution STFT loss.

    Attributes:
        spectral_convergence: ``(resolutions, batch)``.
        log_magnitude: ``(resolutions, batch)``.
        resolutions: the ``(n_fft, hop_length, win_length)`` triples, in row order.
    """

    spectral_convergence: Tensor
    log_magnitude: Tensor
    resolutions: tuple[Resolution, ...]

    @property
    def total(self) -> Tensor:
        """Scalar loss: mean over resolutions and batch of ``L_sc + L_mag``."""
        return (self.spectral_convergence + self.log_magnitude).mean()


def parse_resolutions(text: str) -> tuple[Resolution, ...]:
    """``"512,128,512;1024,256,1024"`` -> ``((512, 128, 512), (1024, 256, 1024))``: triples
    ``n_fft,hop_length,win_length`` with ``0 < hop_length`` and ``0 < win_length <= n_fft``.

    >>> parse_resolutions("512,128,512")
    ((512, 128, 512),)
    """
    out = []
    for part in text.split(";"):
        try:
            triple = tuple(int(v) for v in part.split(","))
        except ValueError:
            triple = ()
        if len(triple) != 3 or not (triple[1] > 0 and 0 < triple[2] <= triple[0]):
            raise ValueError(f"{part.strip()!r} is not n_fft,hop_length,win_length with "
                             f"0 < hop_length and 0 < win_length <= n_fft (in {text!r})")
        out.append(triple)
    return tuple(out)


def _check_resolutions(resolutions: Sequence[Resolution]) -> tuple[Resolution, ...]:
    """``resolutions`` as a tuple of int ``(n_fft, hop_length, win_length)`` triples, or a one-line
    ``ValueError``."""
    resolutions = tuple(tuple(int(v) for v in r) for r in resolutions)
    if not resolutions:
        raise ValueError("resolutions is empty; give (n_fft, hop_length, win_length) triples")
    if any(len(r) != 3 for r in resolutions):
        raise ValueError(f"resolutions must be (n_fft, hop_length, win_length) triples, got "
                         f"{resolutions}")
    return resolutions


@dataclass(frozen=True)
class PowerSpectra:
    """Power spectrograms of a prediction and its reference at each STFT resolution.

    Every spectral loss and metric of this module is a function of these spectrograms, so a
    caller that needs several of them (the distillation loss: MR-STFT and the power loss;
    :func:`speech_quality`: MR-STFT, LSD and MCD) computes each STFT once per resolution and
    signal with :meth:`of` and derives the terms from it.

    Attributes:
        resolutions: the ``(n_fft, hop_length, win_length)`` triples.
        pred, target: one ``(batch, n_fft // 2 + 1, frames)`` power spectrogram
            (:func:`power_spectrogram`) per resolution.
    """

    resolutions: tuple[Resolution, ...]
    pred: tuple[Tensor, ...]
    target: tuple[Tensor, ...]

    @classmethod
    def of(cls, pred: Tensor, target: Tensor,
           resolutions: Sequence[Resolution] = DEFAULT_RESOLUTIONS) -> PowerSpectra:
        """One STFT of ``pred`` and one of ``target`` ``(batch, time)`` per resolution."""
        resolutions = _check_resolutions(resolutions)
        for n_fft, _, _ in resolutions:
            _check_waveforms(pred, target, n_fft)
        return cls(resolutions,
                   tuple(power_spectrogram(pred, *r) for r in resolutions),
                   tuple(power_spectrogram(target, *r) for r in resolutions))

    def at(self, resolution: Resolution) -> tuple[Tensor, Tensor]:
        """``(pred, target)`` power spectrograms at one of :attr:`resolutions`."""
        resolution = tuple(int(v) for v in resolution)
        if resolution not in self.resolutions:
            raise ValueError(f"PowerSpectra: resolution {resolution} is not one of "
                             f"{self.resolutions}")
        i = self.resolutions.index(resolution)
        return self.pred[i], self.target[i]

    def stft_terms(self, eps: float = 1e-7) -> STFTLossTerms:
        """The terms of :func:`multi_resolution_stft_terms` from these spectrograms."""
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        sc_terms, mag_terms = [], []
        for power_pred, power_target in zip(self.pred, self.target, strict=True):
            mag_pred = power_pred.clamp_min(eps).sqrt()
            mag_target = power_target.clamp_min(eps).sqrt()
            numerator = torch.linalg.vector_norm(mag_target - mag_pred, dim=(1, 2))
            denominator = torch.linalg.vector_norm(mag_target, dim=(1, 2))
            sc_terms.append(numerator / denominator)
            mag_terms.append((mag_target.log() - mag_pred.log()).abs().mean(dim=(1, 2)))
        return STFTLossTerms(torch.stack(sc_terms), torch.stack(mag_terms), self.resolutions)

    def average_power_distance(self, eps: float = 1e-5) -> Tensor:
        """:func:`average_power_distance` ``(batch,)`` from these spectrograms."""
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"average_power_distance: eps must be finite and positive, got "
                             f"{eps}")
        terms = []
        for power_pred, power_target in zip(self.pred, self.target, strict=True):
            phi_pred, phi_target = power_pred.mean(-1), power_target.mean(-1)
            terms.append(((phi_pred + eps).log() - (phi_target + eps).log()).square().mean(-1))
        return torch.stack(terms).mean(0)


def multi_resolution_stft_terms(
    pred: Tensor,
    target: Tensor,
    resolutions: Sequence[Resolution] = DEFAULT_RESOLUTIONS,
    eps: float = 1e-7,
) -> STFTLossTerms:
    """Spectral-convergence and log-magnitude terms at each STFT resolution.

    For one example and one resolution, with magnitudes ``S = sqrt(max(|STFT(target)|^2, eps))``
    and ``S_hat`` likewise for ``pred``:

    * spectral convergence ``L_sc = ||S - S_hat||_F / ||S||_F``;
    * log-magnitude loss ``L_mag = (1 / (F * T)) * ||log S - log S_hat||_1`` (natural log,
      ``F`` frequency bins, ``T`` frames).

    The ``eps`` floor on the power keeps the log and the square root differentiable on silence.
    (:meth:`PowerSpectra.stft_terms` gives the same from spectrograms computed once.)

    Args:
        pred: predicted waveforms ``(batch, time)``.
        target: reference waveforms ``(batch, time)``.
        resolutions: ``(n_fft, hop_length, win_length)`` triples.
        eps: floor on the squared magnitude.

    Returns:
        :class:`STFTLossTerms` holding ``(resolutions, batch)`` tensors.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    return PowerSpectra.of(pred, target, resolutions).stft_terms(eps)


def multi_resolution_stft_loss(
    pred: Tensor,
    target: Tensor,
    resolutions: Sequence[Resolution] = DEFAULT_RESOLUTIONS,
    eps: float = 1e-7,
) -> Tensor:
    """Multi-resolution STFT loss of Parallel WaveGAN (also usable as a distillation loss).

    ``L = (1 / M) * sum_m (L_sc^(m) + L_mag^(m))`` over the ``M`` resolutions, averaged over the
    batch, where ``L_sc`` is the spectral convergence ``||S - S_hat||_F / ||S||_F`` and ``L_mag``
    the mean absolute difference of natural-log magnitudes (definitions in
    :func:`multi_resolution_stft_terms`, which also returns the per-term breakdown). The loss is
    differentiable in ``pred`` and exactly zero when ``pred`` equals ``target``.

    Args:
        pred: predicted waveforms ``(batch, time)``.
        target: reference waveforms ``(batch, time)``.
        resolutions: ``(n_fft, hop_length, win_length)`` triples.
        eps: floor on the squared magnitude.

    Returns:
        Scalar tensor.
    """
    return multi_resolution_stft_terms(pred, target, resolutions, eps).total


def average_power_distance(
    pred: Tensor,
    target: Tensor,
    resolutions: Sequence[Resolution] = DEFAULT_RESOLUTIONS,
    eps: float = 1e-5,
) -> Tensor:
    """Squared log distance between time-averaged power spectra (a loudness/colour loss).

    With ``phi(x)_f = (1 / T) * sum_t |X(t, f)|^2`` the power per frequency bin averaged over the
    frames of one example (Parallel WaveNet's power loss compares ``phi`` of the student's
    sample with ``phi`` of the reference), the distance at one resolution is
    ``D = (1 / F) * sum_f (ln(phi(pred)_f + eps) - ln(phi(target)_f + eps))^2``, averaged over
    the resolutions. Unlike the frame-wise log-magnitude L1 (a median over time-frequency bins,
    which most linear-frequency bins, the quiet high ones, decide), the squared log error of the
    averaged spectrum penalizes a band that is many decibels too quiet quadratically, so it
    restores the level and the spectral tilt of a sample that the STFT loss leaves too quiet.
    Comparing logs keeps the term independent of the overall loudness of the reference; ``eps``
    (an absolute power floor) keeps it finite and differentiable on silence.

    (:meth:`PowerSpectra.average_power_distance` gives the same from spectrograms computed
    once.)

    Args:
        pred: predicted waveforms ``(batch, time)``.
        target: reference waveforms ``(batch, time)``.
        resolutions: ``(n_fft, hop_length, win_length)`` triples.
        eps: floor added to the averaged power before the log (> 0).

    Returns:
        ``(batch,)`` distances in squared nepers of power; zero when the averaged power spectra
        are equal.

    References:
        A. van den Oord et al., "Parallel WaveNet: Fast high-fidelity speech synthesis",
        ICML 2018 (the power loss).
    """
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"average_power_distance: eps must be finite and positive, got {eps}")
    return PowerSpectra.of(pred, target, resolutions).average_power_distance(eps)


def log_spectral_distance(
    pred: Tensor,
    target: Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    eps: float = 1e-10,
) -> Tensor:
    """Log-spectral distance in dB.

    ``LSD = (1 / T) * sum_t sqrt((1 / F) * sum_f (10 log10 P(t, f) - 10 log10 P_hat(t, f))^2)``
    with ``P = max(|STFT(target)|^2, eps)`` and ``P_hat`` likewise for ``pred``; the root mean
    square over the ``F = n_fft // 2 + 1`` bins is taken per frame, then averaged over frames.

    Args:
        pred: predicted waveforms ``(batch, time)``.
        target: reference waveforms ``(batch, time)``.
        n_fft: FFT size.
        hop_length: frame shift in samples.
        win_length: window length, ``n_fft`` when ``None``.
        eps: floor on the power (``1e-10`` is -100 dB).

    Returns:
        ``(batch,)`` distances in dB.
    """
    _check_waveforms(pred, target, n_fft)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    return _log_spectral_distance(power_spectrogram(pred, n_fft, hop_length, win_length),
                                  power_spectrogram(target, n_fft, hop_length, win_length), eps)


def _log_spectral_distance(power_pred: Tensor, power_target: Tensor, eps: float) -> Tensor:
    db_pred = 10.0 * torch.log10(power_pred.clamp_min(eps))
    db_target = 10.0 * torch.log10(power_target.clamp_min(eps))
    per_frame = (db_target - db_pred).square().mean(dim=1).sqrt()
    return per_frame.mean(dim=1)


def mel_cepstra(
    x: Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    n_cepstra: int = 24,
    f_min: float = 0.0,
    f_max: float | None = None,
    eps: float = 1e-10,
) -> Tensor:
    """Mel-cepstral coefficients ``c_1 .. c_D`` from the natural-log mel power spectrum.

    With ``P_m(t)`` the mel power spectrum (Slaney mel scale and area-normalised filters, as
    librosa's default) and ``M = n_mels``,
    ``c_d(t) = (1 / M) * sum_{m=0}^{M-1} ln(max(P_m(t), eps)) * cos(pi * d * (m + 1/2) / M)``,
    a DCT-II scaled so that the log mel amplitude ``ln A_m = ln(P_m) / 2`` expands as
    ``c_0 / 2 + sum_{d>=1} c_d cos(pi * d * (m + 1/2) / M)`` -- the one-sided cepstrum convention
    (as in SPTK's mel-cepstrum) in which Kubichek's MCD constant ``10 / ln 10 * sqrt(2 * ...)``
    yields decibels. ``c_0`` (frame energy) is not returned.

    Args:
        x: waveforms ``(batch, time)``.
        sample_rate: sampling rate in Hz.
        n_fft: FFT size (Hann window of ``n_fft`` samples).
        hop_length: frame shift in samples.
        n_mels: number of mel bands ``M``.
        n_cepstra: number of coefficients ``D``, at most ``n_mels - 1``.
        f_min: lowest mel filter edge in Hz.
        f_max: highest mel filter edge in Hz, ``sample_rate / 2`` when ``None``.
        eps: floor on the mel power.

    Returns:
        ``(batch, frames, n_cepstra)`` coefficients ``c_1 .. c_D``.
    """
    f_max = _check_mel_args(sample_rate, n_mels, n_cepstra, f_min, f_max)
    return _mel_cepstra(power_spectrogram(x, n_fft, hop_length), sample_rate, n_fft, n_mels,
                        n_cepstra, f_min, f_max, eps)


def _check_mel_args(sample_rate: int, n_mels: int, n_cepstra: int, f_min: float,
                    f_max: float | None) -> float:
    """``f_max`` (``sample_rate / 2`` when None), or a one-line ``ValueError``."""
    if not 1 <= n_cepstra <= n_mels - 1:
        raise ValueError(f"n_cepstra must be in [1, n_mels - 1 = {n_mels - 1}], got {n_cepstra}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= f_min < f_max <= sample_rate / 2; got f_min={f_min}, f_max={f_max}"
        )
    return f_max


def _mel_cepstra(power: Tensor, sample_rate: int, n_fft: int, n_mels: int, n_cepstra: int,
                 f_min: float, f_max: float, eps: float) -> Tensor:
    """:func:`mel_cepstra` of a power spectrogram ``(batch, n_fft // 2 + 1, frames)``."""
    from torchaudio.functional import melscale_fbanks

    filters = melscale_fbanks(
        n_freqs=n_fft // 2 + 1,
        f_min=f_min,
        f_max=f_max,
        n_mels=n_mels,
        sample_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    ).to(dtype=power.dtype, device=power.device)
    log_mel = torch.einsum("bft,fm->btm", power, filters).clamp_min(eps).log()
    d = torch.arange(1, n_cepstra + 1, dtype=power.dtype, device=power.device)
    m = torch.arange(n_mels, dtype=power.dtype, device=power.device)
    basis = torch.cos(math.pi * d[:, None] * (m[None, :] + 0.5) / n_mels) / n_mels
    return log_mel @ basis.T


def mel_cepstral_distortion(
    pred: Tensor,
    target: Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    n_cepstra: int = 24,
    f_min: float = 0.0,
    f_max: float | None = None,
    eps: float = 1e-10,
) -> Tensor:
    """Mel-cepstral distortion in dB, frame by frame without time warping.

    ``MCD = (1 / T) * sum_t (10 / ln 10) * sqrt(2 * sum_{d=1}^{D} (c_d(t) - c_hat_d(t))^2)``
    with the mel-cepstra of :func:`mel_cepstra` (``c_0`` excluded, so overall gain is ignored).
    Frames are paired by index: vocoder output is time-aligned with its reference, so no DTW is
    used, and every frame (silence included) counts. With ``D = M - 1`` the per-frame value
    equals the standard deviation over mel bands of ``10 log10(P_m / P_hat_m)`` (Parseval).

    Args:
        pred: predicted waveforms ``(batch, time)``.
        target: reference waveforms ``(batch, time)``.
        sample_rate: sampling rate in Hz.
        n_fft, hop_length, n_mels, n_cepstra, f_min, f_max, eps: see :func:`mel_cepstra`.

    Returns:
        ``(batch,)`` distortions in dB.
    """
    _check_waveforms(pred, target, n_fft)
    f_max = _check_mel_args(sample_rate, n_mels, n_cepstra, f_min, f_max)
    settings = (sample_rate, n_fft, n_mels, n_cepstra, f_min, f_max, eps)
    return _mel_cepstral_distortion(
        _mel_cepstra(power_spectrogram(pred, n_fft, hop_length), *settings),
        _mel_cepstra(power_spectrogram(target, n_fft, hop_length), *settings))


def _mel_cepstral_distortion(cepstra_pred: Tensor, cepstra_target: Tensor) -> Tensor:
    diff = cepstra_target - cepstra_pred
    per_frame = (10.0 / math.log(10.0)) * (2.0 * diff.square().sum(dim=-1)).sqrt()
    return per_frame.mean(dim=1)


@dataclass(frozen=True)
class F0Metrics:
    """Pitch errors between two aligned waveforms.

    Attributes:
        rmse_hz: F0 root-mean-square error in Hz over frames voiced in both (NaN if none).
        rmse_cents: the same in cents, ``1200 * log2(f0_pred / f0_target)`` (NaN if none).
        vuv_error_rate: fraction of frames whose voiced/unvoiced decisions differ.
        voiced_both: number of frames voiced in both signals.
        frames: number of frames compared.
    """

    rmse_hz: float
    rmse_cents: float
    vuv_error_rate: float
    voiced_both: int
    frames: int


def f0_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    sample_rate: int,
    f_min: float = 65.0,
    f_max: float = 1047.0,
    frame_length: int | None = None,
    hop_length: int | None = None,
) -> F0Metrics:
    """F0 RMSE (Hz and cents) and voiced/unvoiced error rate from pYIN pitch tracks.

    Both waveforms are tracked with ``librosa.pyin`` under identical settings and compared frame
    by frame. The RMSE uses only frames that pYIN marks voiced in both signals; pYIN quantises
    pitch to 10-cent bins, which bounds the resolution of the result.

    Args:
        pred: predicted waveform ``(time,)``.
        target: reference waveform ``(time,)``.
        sample_rate: sampling rate in Hz.
        f_min: lowest F0 searched, Hz (65 Hz is C2).
        f_max: highest F0 searched, Hz (1047 Hz is C6).
        frame_length: analysis frame in samples; must hold at least two periods of ``f_min``.
            ``None`` picks the smallest power of two that does.
        hop_length: frame shift, ``frame_length // 4`` when ``None``.

    Returns:
        :class:`F0Metrics`.
    """
    import librosa

    arrays = []
    for name, x in (("pred", pred), ("target", target)):
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"{name} must have shape (time,), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
            raise ValueError(f"{name} must be a finite floating-point array")
        arrays.append(x)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"pred and target shapes differ: {arrays[0].shape} vs {arrays[1].shape}")
    if not 0 < f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"need 0 < f_min < f_max <= sample_rate / 2; got f_min={f_min}, f_max={f_max}, "
            f"sample_rate={sample_rate}"
        )
    if frame_length is None:
        frame_length = 1 << math.ceil(math.log2(2 * sample_rate / f_min + 1))
    if frame_length <= 2 * sample_rate / f_min:
        raise ValueError(
            f"frame_length={frame_length} is shorter than two periods of f_min={f_min} Hz "
            f"({2 * sample_rate / f_min:.0f} samples)"
        )
    tracks = [
        librosa.pyin(
            x,
            fmin=f_min,
            fmax=f_max,
            sr=sample_rate,
            frame_length=frame_length,
            hop_length=hop_length,
        )
        for x in arrays
    ]
    (f0_pred, voiced_pred, _), (f0_target, voiced_target, _) = tracks
    both = voiced_pred & voiced_target
    frames = int(voiced_pred.size)
    vuv = float(np.mean(voiced_pred != voiced_target))
    if not both.any():
        return F0Metrics(math.nan, math.nan, vuv, 0, frames)
    diff_hz = f0_pred[both] - f0_target[both]
    diff_cents = 1200.0 * np.log2(f0_pred[both] / f0_target[both])
    return F0Metrics(
        rmse_hz=float(np.sqrt(np.mean(diff_hz**2))),
        rmse_cents=float(np.sqrt(np.mean(diff_cents**2))),
        vuv_error_rate=vuv,
        voiced_both=int(both.sum()),
        frames=frames,
    )


# The one choice of analysis settings of speech_quality (see its docstring).
QUALITY_RESOLUTIONS: tuple[Resolution, ...] = DEFAULT_RESOLUTIONS
QUALITY_FRAME: Resolution = (1024, 256, 1024)  # LSD and MCD frames: one of the MR-STFT STFTs
QUALITY_N_MELS = 80
QUALITY_N_CEPSTRA = 24
QUALITY_F0_RANGE = (65.0, 1047.0)
QUALITY_MIN_SAMPLES = max(n_fft for n_fft, _, _ in QUALITY_RESOLUTIONS) // 2 + 1


@dataclass(frozen=True)
class SpeechQuality:
    """How close a waveform is to its time-aligned reference: the one speech-quality record
    (:func:`speech_quality`), with one key set (:meth:`to_dict`).

    Attributes:
        mr_stft: multi-resolution STFT loss ``L_sc + L_mag`` (mean over resolutions).
        lsd_db: log-spectral distance, dB.
        mcd_db: mel-cepstral distortion, dB.
        f0_rmse_hz: F0 RMSE over frames voiced in both, Hz (None when no frame is, or when
            F0 was not computed).
        f0_rmse_cents: the same in cents (None likewise).
        vuv_error_rate: fraction of frames whose voiced/unvoiced decisions differ (None when F0
            was not computed).
        voiced_both: number of frames voiced in both (None when F0 was not computed).
        rms_ratio: RMS of the waveform over RMS of the reference (1 = same loudness; None
            for a silent reference).
    """

    mr_stft: float
    lsd_db: float
    mcd_db: float
    f0_rmse_hz: float | None
    f0_rmse_cents: float | None
    vuv_error_rate: float | None
    voiced_both: int | None
    rms_ratio: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        """``{"mr_stft", "lsd_db", "mcd_db", "f0_rmse_hz", "f0_rmse_cents", "vuv_error_rate",
        "voiced_both", "rms_ratio"}``."""
        return dataclasses.asdict(self)


def speech_quality(pred: Tensor, reference: Tensor, sample_rate: int,
                   f0: bool = True) -> SpeechQuality:
    """MR-STFT loss, LSD, MCD, F0 errors and loudness ratio of ``pred`` against ``reference``.

    Both are one time-aligned waveform ``(time,)`` (or ``(1, time)``) of at least
    :data:`QUALITY_MIN_SAMPLES` samples; they are compared in float64, frame by frame (no time
    warping). The analysis settings are fixed, the same for every caller (``seqflow vocode``,
    the distillation evaluation, the speech demo):

    * MR-STFT: the three Parallel WaveGAN resolutions :data:`DEFAULT_RESOLUTIONS` (512/128,
      1024/256, 2048/512, Hann windows of ``n_fft``) -- the distillation loss's default, so a
      student's training term and its evaluation measure the same thing;
    * LSD: 1024-point frames every 256 samples (:data:`QUALITY_FRAME`);
    * MCD: 24 mel-cepstra (``c_1 .. c_24``) of 80 Slaney mel bands over the whole band
      (0 Hz to ``sample_rate / 2``) on the same 1024/256 frames;
    * F0: pYIN between 65 and 1047 Hz (C2 to C6), frame length the smallest power of two that
      holds two periods of 65 Hz, hop a quarter of it (skipped with ``f0=False``: pYIN is
      the slowest part).

    Why fixed rather than a run's own feature settings: numbers then compare across runs whose
    mels differ (bands, FFT size, band edges), and a model is not scored with the very
    analysis it was conditioned on. 1024/256 frames, 80 bands and 24 cepstra are the usual
    vocoder-evaluation settings at 16 to 22.05 kHz (at 16 kHz they equal the speech recipe's
    mel). The LSD and MCD frames are one of the MR-STFT resolutions, so every STFT is
    computed once per signal (:class:`PowerSpectra`).

    Returns:
        :class:`SpeechQuality`.
    """
    pair = []
    for name, x in (("pred", pred), ("reference", reference)):
        if not isinstance(x, Tensor) or x.dim() not in (1, 2) or (x.dim() == 2
                                                                 and x.shape[0] != 1):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"speech_quality: {name} must be a (time,) tensor, got {shape}")
        pair.append(x.detach().reshape(1, -1).double().cpu())
    p, r = pair
    if p.shape != r.shape:
        raise ValueError(f"speech_quality: pred and reference lengths differ: {p.shape[1]} vs "
                         f"{r.shape[1]}")
    if p.shape[1] < QUALITY_MIN_SAMPLES:
        raise ValueError(f"speech_quality: {p.shape[1]} samples are fewer than the "
                         f"{QUALITY_MIN_SAMPLES} the largest STFT window needs")
    resolutions = QUALITY_RESOLUTIONS + (() if QUALITY_FRAME in QUALITY_RESOLUTIONS
                                         else (QUALITY_FRAME,))
    spectra = PowerSpectra.of(p, r, resolutions)
    terms = spectra.stft_terms()
    mr_stft = float((terms.spectral_convergence + terms.log_magnitude)[
        [resolutions.index(q) for q in QUALITY_RESOLUTIONS]].mean())
    power_pred, power_ref = spectra.at(QUALITY_FRAME)
    n_fft = QUALITY_FRAME[0]
    settings = (sample_rate, n_fft, QUALITY_N_MELS, QUALITY_N_CEPSTRA, 0.0,
                _check_mel_args(sample_rate, QUALITY_N_MELS, QUALITY_N_CEPSTRA, 0.0, None),
                1e-10)
    mcd = _mel_cepstral_distortion(_mel_cepstra(power_pred, *settings),
                                   _mel_cepstra(power_ref, *settings))
    rms_ref = float(r.square().mean().sqrt())
    pitch = None
    if f0:
        pitch = f0_metrics(p[0].numpy(), r[0].numpy(), sample_rate, *QUALITY_F0_RANGE)
    voiced = pitch is not None and pitch.voiced_both > 0
    return SpeechQuality(
        mr_stft=mr_stft,
        lsd_db=float(_log_spectral_distance(power_pred, power_ref, 1e-10)[0]),
        mcd_db=float(mcd[0]),
        f0_rmse_hz=pitch.rmse_hz if voiced else None,
        f0_rmse_cents=pitch.rmse_cents if voiced else None,
        vuv_error_rate=None if pitch is None else pitch.vuv_error_rate,
        voiced_both=None if pitch is None else pitch.voiced_both,
        rms_ratio=float(p.square().mean().sqrt()) / rms_ref if rms_ref > 0 else None,
    )
