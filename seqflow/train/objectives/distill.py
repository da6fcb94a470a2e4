"""Probability density distillation: a student flow fitted to a frozen teacher's density.

The student ``q`` (typically an IAF stack: one-pass sampling) draws ``x`` from noise given the
local features (a log-mel); the teacher ``p`` (typically a MAF / WaveNet: one-pass density) is a
finished run, loaded from its directory and never optimized. Per training step the task runs
the student once (sample and per-step Gaussian) and the teacher once over the student's sample,
and minimizes, per audio sample,

    loss = r * (w_kl * KL(q || p) / T + lambda * mean_t (log sigma_q,t - log sigma_p,t)^2)
           + w_stft * MR-STFT(x, y) + w_pow * D_pow(x, y),

with ``y`` the ground truth of the same mel, ``D_pow`` the squared log distance of the
time-averaged power spectra (:func:`~seqflow.metrics.audio.average_power_distance`) and ``r``
the KL warm-up ramp ``min(1, (step + 1) / kl_warmup_steps)`` (1 without warm-up), and
where ``KL`` is either

* ``closed_form``: ``sum_t KL(N(M_t, Sigma_t^2) || N(mu_t, sigma_t^2))`` with the student's
  per-step Gaussian given ``z_<t`` and the teacher's given ``x_<t``
  (:mod:`seqflow.transforms.gaussian_steps`); since ``x_<t`` determines ``z_<t``, its
  expectation over the student's noise is exactly ``KL(q || p)`` and it has lower variance
  than the Monte Carlo estimate;
* ``monte_carlo``: ``log q(x) - log p(x)`` of the student's reparameterized sample (any
  teacher with a ``log_prob``, any student with ``sample_and_log_prob``).

The regularizer (ClariNet's ``lambda (log sigma_q - log sigma_p)^2``) keeps the student's
scales near the teacher's early on, when the KL alone gives steep gradients. A student whose
samples are still nearly white noise is not pushed louder by the KL (on its own quiet history
the teacher predicts quiet samples) nor by the frame-wise STFT loss: the log-magnitude L1 is
lowest at about the median level of the reference's time-frequency bins, most of which are
quiet high-frequency bins. The power term (Parallel WaveNet's power loss, in log units)
penalizes a band that is many decibels too quiet quadratically, which raises the low
frequencies; the warm-up lets the ground-truth terms act before the teacher's density takes
over. Validation scores held-out segments: the same terms, with the teacher's log-likelihood
of the student samples (nats per audio sample).

References:
    A. van den Oord et al., "Parallel WaveNet: Fast high-fidelity speech synthesis", ICML 2018.
    W. Ping, K. Peng, J. Chen, "ClariNet: Parallel wave generation in end-to-end text-to-speech",
    ICLR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqflow.distributions import Flow, StandardNormal
from seqflow.metrics.audio import DEFAULT_RESOLUTIONS, PowerSpectra, Resolution
from seqflow.train.objectives.anneal import annealed_beta
from seqflow.train.objectives.base import Task, TaskOutput
from seqflow.transforms.gaussian_steps import (
    StepGaussian,
    check_gaussian_steps,
    gaussian_kl,
    generated_gaussian,
    scored_gaussian,
)

KL_ESTIMATORS = ("closed_form", "monte_carlo")


@dataclass
class DistillSettings:
    """The ``train.distill`` section of a config whose ``train.task`` is ``distill``.

    ``teacher`` is the teacher's run directory (frozen, never optimized; its ``data.mel`` and
    local-feature model settings must equal the student's), ``kl`` the KL estimator
    (``closed_form`` per-step Gaussian KL, or ``monte_carlo``), ``kl_weight``, ``reg_weight``
    (ClariNet's ``lambda`` on ``(log sigma_s - log sigma_t)^2``), ``stft_weight`` and
    ``stft_resolutions`` (``"n_fft,hop_length,win_length;..."``) of the multi-resolution STFT
    loss against the ground truth of the same mel, ``power_weight`` the weight of the log
    distance of time-averaged power spectra at the same resolutions (Parallel WaveNet's power
    loss; 0 = off), and ``kl_warmup_steps`` the steps over which the KL and its regularizer
    ramp up to full weight (0 = off). The arguments of :class:`DistillTask`.
    """

    teacher: str = ""
    kl: str = "closed_form"
    kl_weight: float = 1.0
    reg_weight: float = 4.0
    stft_weight: float = 1.0
    stft_resolutions: str = "512,128,512;1024,256,1024;2048,512,2048"
    power_weight: float = 0.0
    kl_warmup_steps: int = 0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Validation terms: mean per held-out segment, each in its own units (see DistillTask).
EVAL_TERMS = ("kl", "kl_mc", "reg", "stft", "power", "teacher_ll", "student_ll")


def gaussian_steps_of(flow: nn.Module, inverse: bool) -> bool:
    """True when ``flow`` is a :class:`Flow` with a standard-normal base whose transform has a
    one-pass per-step Gaussian in that direction (:func:`check_gaussian_steps`)."""
    if not isinstance(flow, Flow) or not isinstance(flow.base, StandardNormal):
        return False
    try:
        check_gaussian_steps(flow.transform, inverse)
    except ValueError:
        return False
    return True


class DistillTask(Task):
    """Fit ``student`` to the frozen ``teacher`` on batches ``{"x": (batch, 1, T), "context"}``.

    ``x`` is the ground-truth audio and ``context`` its local features (log-mel
    ``(batch, n_mels, frames)``); the student samples from the same context.

    Args:
        student: a :class:`Flow` (the saved model).
        teacher: a :class:`Flow` with ``log_prob(x, context)``; frozen here.
        kl: ``"closed_form"`` (needs per-step Gaussians of both flows) or ``"monte_carlo"``.
        kl_weight, reg_weight, stft_weight, power_weight: ``w_kl``, ``lambda``, ``w_stft``,
            ``w_pow`` (>= 0).
        stft_resolutions: ``(n_fft, hop_length, win_length)`` triples of the STFT and power
            losses.
        kl_warmup_steps: optimizer steps over which the KL and its regularizer ramp up
            linearly from ``1 / kl_warmup_steps`` to full weight (0: no warm-up).

    Logged training terms (means per audio sample): ``kl`` (the estimator trained on, nats),
    ``kl_mc`` (the Monte Carlo estimate, always), ``reg``, ``stft``, ``power``, ``teacher_ll``
    (``log p(x) / T`` of the student's sample), ``student_entropy`` (``-log q(x) / T``),
    ``loss``. ``evaluate`` returns each segment's loss; :meth:`units` reports the mean of every
    term over the scored segments (:data:`EVAL_TERMS`, ``student_ll = -student_entropy``).
    """

    score_name = "loss"

    def __init__(self, student: nn.Module, teacher: nn.Module, kl: str = "closed_form",
                 kl_weight: float = 1.0, reg_weight: float = 4.0, stft_weight: float = 1.0,
                 stft_resolutions: Sequence[Resolution] = DEFAULT_RESOLUTIONS,
                 power_weight: float = 0.0, kl_warmup_steps: int = 0):
        super().__init__()
        if kl not in KL_ESTIMATORS:
            raise ValueError(f"DistillTask: kl must be one of {', '.join(KL_ESTIMATORS)}, "
                             f"got {kl!r}")
        for name, value in (("kl_weight", kl_weight), ("reg_weight", reg_weight),
                            ("stft_weight", stft_weight), ("power_weight", power_weight)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"DistillTask: {name} must be finite and >= 0, got {value}")
        if kl_weight == 0 and stft_weight == 0 and power_weight == 0:
            raise ValueError("DistillTask: kl_weight, stft_weight and power_weight are all 0; "
                             "nothing to fit")
        if isinstance(kl_warmup_steps, bool) or not isinstance(kl_warmup_steps, int) or (
                kl_warmup_steps < 0):
            raise ValueError(f"DistillTask: kl_warmup_steps must be an int >= 0, got "
                             f"{kl_warmup_steps!r}")
        if not callable(getattr(student, "sample_and_log_prob", None)):
            raise ValueError(f"DistillTask: the student must have sample_and_log_prob, got "
                             f"{type(student).__name__}")
        if not callable(getattr(teacher, "log_prob", None)):
            raise ValueError(f"DistillTask: the teacher must have log_prob, got "
                             f"{type(teacher).__name__}")
        self.student_steps = gaussian_steps_of(student, inverse=True)
        self.teacher_steps = gaussian_steps_of(teacher, inverse=False)
        need = (["kl=closed_form"] if kl == "closed_form" else []) + (
            ["reg_weight > 0"] if reg_weight > 0 else [])
        if need and not (self.student_steps and self.teacher_steps):
            which = [n for n, ok in (("student", self.student_steps),
                                     ("teacher", self.teacher_steps)) if not ok]
            raise ValueError(f"DistillTask: {' and '.join(need)} needs per-step Gaussians, but "
                             f"the {' and '.join(which)} is not a standard-normal flow of "
                             "elementwise and one-pass autoregressive affine layers (IAF student, "
                             "MAF teacher); use kl=monte_carlo and reg_weight=0")
        self.model = student
        self.attach_frozen("teacher", teacher)
        self.kl = kl
        self.kl_weight, self.reg_weight, self.stft_weight = kl_weight, reg_weight, stft_weight
        self.power_weight, self.kl_warmup_steps = power_weight, kl_warmup_steps
        self.stft_resolutions = tuple(tuple(int(v) for v in r) for r in stft_resolutions)
        self._eval_sums: dict[str, float] = {}
        self._eval_count = 0

    @property
    def teacher(self) -> nn.Module:
        return self._frozen["teacher"]

    # ----------------------------------------------------------------------------- terms
    def spectral_terms(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(stft, power)``, each ``(batch,)``, of waveforms ``(batch, time)``: the MR-STFT
        loss (the mean over this task's resolutions of ``L_sc + L_mag``) and the power loss
        (:func:`~seqflow.metrics.audio.average_power_distance`), from one STFT per resolution
        and signal (:class:`~seqflow.metrics.audio.PowerSpectra`); a term whose weight is 0 is
        zeros, and with both weights 0 no STFT is computed."""
        zeros = pred.new_zeros(pred.shape[0])
        if self.stft_weight == 0 and self.power_weight == 0:
            return zeros, zeros
        spectra = PowerSpectra.of(pred, target, self.stft_resolutions)
        stft = power = zeros
        if self.stft_weight > 0:
            st = spectra.stft_terms()
            stft = (st.spectral_convergence + st.log_magnitude).mean(0)
        if self.power_weight > 0:
            power = spectra.average_power_distance()
        return stft, power

    def kl_ramp(self) -> float:
        """The warm-up factor ``r`` of the KL and its regularizer at ``self.step``: the linear
        ramp from 0, one step ahead, ``min(1, (step + 1) / kl_warmup_steps)``."""
        return annealed_beta(self.step + 1, self.kl_warmup_steps, 0.0)

    def terms(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Per-segment terms ``(batch,)``, each a mean per audio sample (see the class doc),
        plus ``loss`` and the student's sample ``x`` ``(batch, 1, T)``."""
        target, context = batch["x"], batch.get("context")
        n, steps = target.shape[0], target[0].numel()
        student_g: StepGaussian | None = None
        if self.student_steps:
            z = torch.randn(target.shape, generator=generator, device=target.device,
                            dtype=target.dtype)
            student_g = generated_gaussian(self.model.transform, z, context)
            x = student_g.values
            log_q = (-0.5 * z.square() - _HALF_LOG_2PI - student_g.log_scale).flatten(1).sum(1)
        else:
            x, log_q = self.model.sample_and_log_prob(n, context, length=target.shape[-1])
        teacher_g: StepGaussian | None = None
        if self.teacher_steps:
            teacher_g = scored_gaussian(self.teacher.transform, x, context)
            log_p = teacher_g.log_prob(x)
        else:
            log_p = self.teacher.log_prob(x, context, validate=False)
        kl_mc = (log_q - log_p) / steps
        if self.kl == "closed_form":
            kl = gaussian_kl(student_g.mean, student_g.log_scale, teacher_g.mean,
                             teacher_g.log_scale).flatten(1).mean(1)
        else:
            kl = kl_mc
        if self.reg_weight > 0:
            reg = (student_g.log_scale - teacher_g.log_scale).square().flatten(1).mean(1)
        else:
            reg = torch.zeros_like(kl)
        stft, power = self.spectral_terms(x.flatten(1), target.flatten(1))
        ramp = self.kl_ramp() if self.training else 1.0
        loss = (ramp * (self.kl_weight * kl + self.reg_weight * reg) + self.stft_weight * stft
                + self.power_weight * power)
        return {"loss": loss, "kl": kl, "kl_mc": kl_mc, "reg": reg, "stft": stft, "power": power,
                "teacher_ll": log_p / steps, "student_entropy": -log_q / steps, "x": x}

    def forward(self, batch: dict) -> TaskOutput:
        t = self.terms(batch)
        metrics = {k: v.detach().mean() for k, v in t.items() if k != "x"}
        return TaskOutput(loss=t["loss"].mean(), metrics=metrics)

    def evaluate(self, batch: dict) -> Tensor:
        """Each segment's loss ``(batch,)``; the noise is seeded by the first item index, so
        a held-out set is scored with the same draws at every evaluation."""
        seed = int(torch.as_tensor(batch["index"]).flatten()[0])
        generator = torch.Generator(device=batch["x"].device).manual_seed(seed)
        t = self.terms(batch, generator)
        t["student_ll"] = -t["student_entropy"]
        for name in EVAL_TERMS:
            self._eval_sums[name] = self._eval_sums.get(name, 0.0) + float(
                t[name].double().sum())
        self._eval_count += len(t["loss"])
        return t["loss"]

    def units(self, mean_score: float, batch: dict) -> dict[str, float]:
        """The mean loss and the mean of every term over the segments scored since the last
        call (then the sums restart)."""
        out = {self.score_name: mean_score}
        if self._eval_count:
            out.update({k: v / self._eval_count for k, v in self._eval_sums.items()})
        self._eval_sums, self._eval_count = {}, 0
        return out
