"""Density distillation against a Gaussian AR(2) teacher with known parameters.

The teacher is ``Scaling(g)`` then a MAF layer ``z_t = (u_t - a1 u_{t-1} - a2 u_{t-2}) / sigma``
on ``u = g x``: the AR(2) process ``x_t = a1 x_{t-1} + a2 x_{t-2} + (sigma / g) e_t`` started
from zeros. A linear IAF student ``x_t = c z_t + sum_k h_k z_{t-k}`` is a zero-mean
Gaussian ``N(0, A A^T)``, so ``KL(student || teacher)`` has the closed form of two multivariate
Gaussians, ``0.5 (||B A||_F^2 - T) - log|det A| - log|det B|`` with ``z = B x`` the teacher's map.
The student with ``c = sigma / g`` and ``h_k = c psi_k`` (``psi`` the AR(2) impulse response) is
the teacher's exact inverse.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.distributions import Flow, StandardNormal
from seqflow.metrics import audio as audio_metrics
from seqflow.metrics.audio import (
    average_power_distance,
    multi_resolution_stft_loss,
    multi_resolution_stft_terms,
)
from seqflow.train.config import ConfigError, config_from_dict
from seqflow.train.objectives import DistillTask
from seqflow.train.objectives.teacher import check_teacher_data, load_teacher
from seqflow.transforms import AffineCoupling, AutoregressiveAffine, Compose, Scaling

A1, A2, SIGMA, GAIN = 0.6, -0.3, 0.5, 2.0
BOUND = 6.0


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def raw_for(log_scale: float) -> float:
    """The raw conditioner output whose soft-clamped log-scale is ``log_scale``."""
    return log_scale / (1 - abs(log_scale) / BOUND)


class CausalLinear(nn.Module):
    """``shift_t = sum_k taps[k-1] y_{t-k}``, constant raw log-scale: a linear AR conditioner."""

    def __init__(self, taps: Tensor, raw: float, learn: bool = False):
        super().__init__()
        self.taps = nn.Parameter(taps.clone().double(), requires_grad=learn)
        self.raw = nn.Parameter(torch.tensor(raw, dtype=torch.float64), requires_grad=learn)

    def forward(self, y: Tensor, context=None) -> tuple[Tensor, Tensor]:
        k = len(self.taps)
        shift = F.conv1d(F.pad(y, (k, 0)), self.taps.flip(0).view(1, 1, k))[..., :y.shape[-1]]
        return shift, self.raw.expand_as(y)


def teacher_flow() -> Flow:
    scaling = Scaling(1).double()
    with torch.no_grad():
        scaling.log_scale.fill_(math.log(GAIN))
    ar = CausalLinear(torch.tensor([A1, A2], dtype=torch.float64), raw_for(math.log(SIGMA)))
    maf = AutoregressiveAffine(ar, 1, "data", BOUND, sequence=True)
    return Flow(Compose([scaling, maf]), StandardNormal(1)).double()


def student_flow(scale: float, taps: Tensor, learn: bool = False) -> Flow:
    iaf = AutoregressiveAffine(CausalLinear(taps, raw_for(math.log(scale)), learn),
                               1, "noise", BOUND, sequence=True)
    return Flow(Compose([iaf]), StandardNormal(1)).double()


def impulse_response(steps: int) -> Tensor:
    psi = torch.zeros(steps, dtype=torch.float64)
    psi[0] = 1.0
    for t in range(1, steps):
        psi[t] = A1 * psi[t - 1] + (A2 * psi[t - 2] if t > 1 else 0.0)
    return psi


def exact_kl(student: Flow, steps: int) -> float:
    """Closed-form KL of the two zero-mean Gaussians on ``R^steps`` (nats per sequence)."""
    cond = student.transform[0].conditioner
    c = float(torch.exp(student.transform[0].bound_log_scale(cond.raw.detach())))
    a = c * torch.eye(steps, dtype=torch.float64)
    for k, h in enumerate(cond.taps.detach().tolist(), start=1):
        a = a + h * torch.diag(torch.ones(steps - k, dtype=torch.float64), -k)
    b = (GAIN / SIGMA) * (torch.eye(steps, dtype=torch.float64)
                          - A1 * torch.diag(torch.ones(steps - 1, dtype=torch.float64), -1)
                          - A2 * torch.diag(torch.ones(steps - 2, dtype=torch.float64), -2))
    return float(0.5 * ((b @ a).square().sum() - steps) - steps * math.log(c)
                 - steps * math.log(GAIN / SIGMA))


def batch_of(n: int, steps: int) -> dict:
    return {"x": torch.zeros(n, 1, steps, dtype=torch.float64), "context": None,
            "index": torch.arange(n)}


def task_for(student: Flow, **kwargs) -> DistillTask:
    kwargs.setdefault("stft_weight", 0.0)
    return DistillTask(student, teacher_flow(), **kwargs)


def test_closed_form_kl_matches_monte_carlo_and_the_exact_gaussian_kl():
    steps, n = 16, 20_000
    student = student_flow(0.35, torch.tensor([0.2, 0.1, -0.05]))
    torch.manual_seed(0)
    terms = task_for(student).terms(batch_of(n, steps))
    closed, mc = terms["kl"] * steps, terms["kl_mc"] * steps  # nats per sequence
    exact = exact_kl(student, steps)
    assert exact > 0.5  # a clearly wrong student
    se_closed, se_mc = closed.std() / math.sqrt(n), mc.std() / math.sqrt(n)
    assert abs(float(closed.mean()) - exact) < 3 * float(se_closed)
    assert abs(float(mc.mean()) - exact) < 3 * float(se_mc)
    assert abs(float(closed.mean() - mc.mean())) < 3 * float((closed - mc).std() / math.sqrt(n))


def test_kl_is_zero_for_the_teachers_exact_inverse():
    steps = 24
    c = SIGMA / GAIN
    student = student_flow(c, c * impulse_response(steps)[1:])
    assert exact_kl(student, steps) == pytest.approx(0.0, abs=1e-9)
    torch.manual_seed(0)
    terms = task_for(student, kl="monte_carlo").terms(batch_of(64, steps))
    assert terms["kl_mc"].abs().max() < 1e-9  # log q(x) = log p(x) at every sample
    terms = task_for(student).terms(batch_of(64, steps))
    assert terms["kl"].abs().max() < 1e-9
    assert terms["reg"].abs().max() < 1e-12


def test_training_drives_the_kl_below_a_threshold():
    steps = 32
    student = student_flow(1.0, torch.zeros(6), learn=True)
    task = task_for(student, reg_weight=4.0)
    before = exact_kl(student, steps) / steps
    optimizer = torch.optim.Adam(task.parameters(), lr=0.05)
    torch.manual_seed(0)
    for _ in range(300):
        optimizer.zero_grad()
        out = task(batch_of(32, steps))
        out.loss.backward()
        optimizer.step()
    after = exact_kl(student, steps) / steps
    assert before > 0.5
    assert after < 2e-3, f"KL per step {after:.4g} after training (from {before:.3g})"
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert set(out.metrics) >= {"kl", "kl_mc", "reg", "stft", "teacher_ll", "student_entropy"}


def test_stft_term_is_the_metric_and_zero_on_identical_signals():
    steps = 1200
    torch.manual_seed(0)
    student = student_flow(0.3, torch.tensor([0.4]))
    task = task_for(student, stft_weight=1.0)
    batch = batch_of(2, steps)
    batch["x"] = 0.1 * torch.randn(2, 1, steps, dtype=torch.float64)
    own = task.terms(batch, torch.Generator().manual_seed(3))["x"].detach()
    reference = task.terms(batch, torch.Generator().manual_seed(3))
    assert float(reference["stft"].mean()) == pytest.approx(
        float(multi_resolution_stft_loss(own.flatten(1), batch["x"].flatten(1))), rel=1e-9)
    assert float(reference["stft"].min()) > 0.1
    batch["x"] = own  # the ground truth is now exactly the student's sample
    assert task.terms(batch, torch.Generator().manual_seed(3))["stft"].abs().max() == 0.0


def test_power_term_is_the_metric_and_zero_on_equal_power_spectra():
    steps = 1200
    torch.manual_seed(0)
    task = task_for(student_flow(0.3, torch.tensor([0.4])), power_weight=2.0)
    batch = batch_of(2, steps)
    batch["x"] = 0.1 * torch.randn(2, 1, steps, dtype=torch.float64)
    terms = task.terms(batch, torch.Generator().manual_seed(3))
    own = terms["x"].detach()
    torch.testing.assert_close(terms["power"], average_power_distance(
        own.flatten(1), batch["x"].flatten(1)))
    torch.testing.assert_close(terms["loss"], terms["kl"] + 4.0 * terms["reg"]
                               + 2.0 * terms["power"])
    assert float(terms["power"].min()) > 0.1
    batch["x"] = -own  # the sign flip leaves every power spectrum unchanged
    assert task.terms(batch, torch.Generator().manual_seed(3))["power"].abs().max() < 1e-20


def test_stft_and_power_terms_share_one_stft_per_resolution_and_signal(monkeypatch):
    """With both spectral weights on, one loss step computes each STFT once (resolutions x
    {sample, ground truth}) and gets the same terms as the two separate computations."""
    steps = 1200
    resolutions = ((256, 64, 256), (512, 128, 512))
    task = task_for(student_flow(0.3, torch.tensor([0.4])), stft_weight=1.0, power_weight=2.0,
                    stft_resolutions=resolutions)
    batch = batch_of(2, steps)
    batch["x"] = 0.1 * torch.randn(2, 1, steps, dtype=torch.float64,
                                   generator=torch.Generator().manual_seed(1))
    calls = []
    real = torch.stft
    monkeypatch.setattr(audio_metrics.torch, "stft",
                        lambda x, *a, **k: calls.append(k["n_fft"]) or real(x, *a, **k))
    terms = task.terms(batch, torch.Generator().manual_seed(3))
    assert sorted(calls) == [256, 256, 512, 512]
    own, truth = terms["x"].detach().flatten(1), batch["x"].flatten(1)
    separate = multi_resolution_stft_terms(own, truth, resolutions)
    torch.testing.assert_close(terms["stft"], (separate.spectral_convergence
                                               + separate.log_magnitude).mean(0), rtol=0, atol=0)
    torch.testing.assert_close(terms["power"], average_power_distance(own, truth, resolutions),
                               rtol=0, atol=0)
    calls.clear()
    task_for(student_flow(0.3, torch.tensor([0.4])), stft_weight=0.0, power_weight=0.0,
             kl_weight=1.0).terms(batch, torch.Generator().manual_seed(3))
    assert calls == []  # no spectral term: no STFT


def test_kl_warmup_ramps_the_density_terms_in_training_only():
    steps = 64
    task = task_for(student_flow(0.3, torch.tensor([0.4])), kl_warmup_steps=4, stft_weight=0.5,
                    stft_resolutions=((32, 8, 32),))
    batch = batch_of(2, steps)
    batch["x"] = 0.1 * torch.randn(2, 1, steps, dtype=torch.float64)
    for step, ramp in ((0, 0.25), (1, 0.5), (3, 1.0), (10, 1.0)):
        task.step = step
        t = task.terms(batch, torch.Generator().manual_seed(5))
        torch.testing.assert_close(t["loss"], ramp * (t["kl"] + 4.0 * t["reg"])
                                   + 0.5 * t["stft"])
    task.step = 0
    task.eval()
    t = task.terms(batch, torch.Generator().manual_seed(5))
    torch.testing.assert_close(t["loss"], t["kl"] + 4.0 * t["reg"] + 0.5 * t["stft"])
    with pytest.raises(ValueError, match="kl_warmup_steps must be an int >= 0"):
        task_for(student_flow(0.3, torch.tensor([0.4])), kl_warmup_steps=-1)


def test_evaluate_reports_every_term_and_repeats_its_draws():
    steps = 16
    task = task_for(student_flow(0.35, torch.tensor([0.2]))).eval()
    with torch.no_grad():
        first = task.evaluate(batch_of(8, steps))
        units = task.units(float(first.mean()), batch_of(1, steps))
        again = task.evaluate(batch_of(8, steps))
    torch.testing.assert_close(first, again)
    assert set(units) == {"loss", "kl", "kl_mc", "reg", "stft", "power", "teacher_ll",
                          "student_ll"}
    assert units["student_ll"] - units["teacher_ll"] == pytest.approx(units["kl_mc"], rel=1e-9)


def test_task_refuses_what_it_cannot_compute():
    coupling_teacher = Flow(Compose([AffineCoupling(2, hidden_features=4)]), StandardNormal(2))
    student = student_flow(0.3, torch.tensor([0.1]))
    with pytest.raises(ValueError, match="kl=closed_form and reg_weight > 0 needs per-step "
                                         "Gaussians, but the teacher is not"):
        DistillTask(student, coupling_teacher, stft_weight=0.0)
    DistillTask(student, coupling_teacher, kl="monte_carlo", reg_weight=0.0)  # allowed
    with pytest.raises(ValueError, match="kl must be one of"):
        task_for(student, kl="exact")
    with pytest.raises(ValueError, match="reg_weight must be finite and >= 0"):
        task_for(student, reg_weight=-1.0)
    with pytest.raises(ValueError, match="nothing to fit"):
        task_for(student, kl_weight=0.0)


def distill_config(**distill) -> dict:
    return {"model": {"kind": "sequence_iaf"},
            "data": {"source": "audio", "path": "corpus"},
            "train": {"task": "distill", "distill": {"teacher": "teacher_run", **distill}}}


def test_config_errors_are_one_line():
    cases = [
        ({"teacher": ""}, "train.distill.teacher: required"),
        ({"kl": "exact"}, "train.distill.kl: 'exact' is not one of closed_form, monte_carlo"),
        ({"reg_weight": -1}, "train.distill.reg_weight: must be >= 0"),
        ({"stft_resolutions": "512,128"}, "'512,128' is not n_fft,hop_length,win_length"),
        ({"stft_resolutions": "512,128,1024"}, "0 < win_length <= n_fft"),
        ({"kl_weight": 0, "stft_weight": 0}, "nothing to distill"),
        ({"power_weight": -1}, "train.distill.power_weight: must be >= 0"),
        ({"kl_warmup_steps": -1}, "train.distill.kl_warmup_steps: must be >= 0"),
        ({"stft_resolutions": "16384,512,2048"}, "must exceed half the largest STFT"),
    ]
    for train, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            config_from_dict(distill_config(**train))
        assert "\n" not in str(err.value)
    config_from_dict(distill_config())  # the defaults are valid


def test_teacher_with_other_features_is_refused(tmp_path):
    student = config_from_dict(distill_config())
    teacher = config_from_dict({"model": {"kind": "sequence_maf"},
                                "data": {"source": "audio", "path": "corpus",
                                         "mel": {"n_mels": 64}}})
    with pytest.raises(ConfigError, match=r"trained with data.mel.n_mels=64 but this run has "
                                          r"data.mel.n_mels=80"):
        check_teacher_data(teacher, student, "teacher_run")
    hop = config_from_dict({"data": {"source": "audio", "path": "corpus",
                                     "mel": {"hop_length": 128}}})
    with pytest.raises(ConfigError, match="data.mel.hop_length=128"):
        check_teacher_data(hop, student, "teacher_run")
    with pytest.raises(ConfigError, match="is not a run directory"):
        load_teacher(config_from_dict(distill_config(teacher=str(tmp_path))))
    (tmp_path / "config.yaml").write_text("model:\n  kind: sequence_maf\ndata:\n"
                                          "  source: audio\n  path: corpus\n  mel:\n"
                                          "    sample_rate: 22050\n    f_max: 8000\n")
    with pytest.raises(ConfigError, match="data.mel.sample_rate=22050 but this run has "
                                          "data.mel.sample_rate=16000"):
        load_teacher(config_from_dict(distill_config(teacher=str(tmp_path))))
