"""The LinearPrediction layer: causality, streaming, priming, per-step Gaussians and the KL.

Checked against autograd Jacobians, the layer's own one-pass analysis filter (the synthesis
must invert it whatever way it is streamed), the closed-form Gaussian floor of a network
whose output starts at zero, and a Monte Carlo estimate of the distillation KL.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqflow.data.features import LogMel, MelConfig
from seqflow.data.linear_prediction import LinearPredictionConfig
from seqflow.distributions import Flow, StandardNormal
from seqflow.nn.streaming import stream_progress
from seqflow.train.objectives import DistillTask
from seqflow.transforms import (
    Compose,
    LinearPrediction,
    SequenceIAF,
    SequenceMAF,
    SequenceStack,
    generated_gaussian,
    scored_gaussian,
)

MEL = MelConfig(n_fft=64, hop_length=16, win_length=64, n_mels=8)
FRAMES = 3
T = FRAMES * MEL.hop_length


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _audio(batch: int, frames: int = FRAMES, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Coloured noise ``(batch, 1, frames * hop)`` and its log-mel, float64."""
    g = torch.Generator().manual_seed(seed)
    white = torch.randn(batch, 1, frames * MEL.hop_length + 8, generator=g, dtype=torch.float64)
    x = (white[..., 8:] + 0.9 * white[..., 7:-1] + 0.5 * white[..., 6:-2]) * 0.1
    return x, LogMel(MEL)(x[:, 0]).double()


def _layer(interpolation: str = "gain", order: int = 4) -> LinearPrediction:
    return LinearPrediction(MEL, LinearPredictionConfig(order=order,
                                                        interpolation=interpolation)).double()


def _stack(layer: type, flows: int = 2, zero: bool = False) -> SequenceStack:
    torch.manual_seed(0)
    layers = [layer(1, residual_channels=4, skip_channels=4, blocks=3,
                    cond_channels=MEL.n_mels) for _ in range(flows)]
    stack = SequenceStack(layers, cond_channels=MEL.n_mels, upsample_factor=MEL.hop_length)
    if not zero:
        with torch.no_grad():
            for p in stack.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return stack.double()


@pytest.mark.parametrize("interpolation", ["gain", "hold", "reflection"])
def test_causal_with_logdet_minus_sum_of_log_gains(interpolation):
    layer = _layer(interpolation)
    x, mel = _audio(1)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v, mel)[0], x).reshape(T, T)
    assert torch.all(jac.triu(1) == 0), "e_t depends on a later x"
    shift, log_gain = layer.conditioner(x, mel)
    torch.testing.assert_close(jac.diagonal(), torch.exp(-log_gain).flatten())
    _, logdet = layer(x, mel)
    torch.testing.assert_close(logdet, -log_gain.flatten(1).sum(1))
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac).logabsdet)
    assert jac.tril(-1).abs().max() > 1e-3  # and it does filter


@pytest.mark.parametrize("interpolation", ["gain", "reflection"])
def test_synthesis_inverts_analysis_streamed_in_chunks_and_primed(interpolation):
    layer = _layer(interpolation, order=6)
    x, mel = _audio(2, frames=5)
    e, logdet = layer(x, mel)
    back, logdet_inv = layer.inverse(e, mel)
    torch.testing.assert_close(back, x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logdet_inv, -logdet)
    seen = []
    with stream_progress(seen.append, chunk=7):  # chunks that cut frames
        chunked, _ = layer.inverse(e, mel)
    assert sum(seen) == x.shape[-1] and len(seen) > 5
    torch.testing.assert_close(chunked, x, rtol=1e-10, atol=1e-12)
    naive, _ = layer.naive_sequential(e, mel)  # the reference: one full pass per step
    torch.testing.assert_close(naive, x, rtol=1e-10, atol=1e-12)
    for cut in (16, 23):  # a history that ends at a frame boundary, and inside a frame
        tail, _ = layer.inverse_after(e[..., cut:], mel, history=x[..., :cut])
        torch.testing.assert_close(tail, x[..., cut:], rtol=1e-10, atol=1e-12)


def test_synthesis_gradient_is_the_adjoint_filter():
    layer = _layer("reflection", order=5)
    x, mel = _audio(1)
    e = layer(x, mel)[0].detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda u: layer.inverse(u, mel)[0], (e,))


def test_teacher_sampling_primes_through_the_filter():
    """Compose([LinearPrediction, MAF stack]).sample(history=...) continues the history: the
    same result as the unprimed inverse of the noise that the full sequence maps to."""
    flow = Flow(Compose([_layer(order=4), _stack(SequenceMAF)]), StandardNormal(1)).double()
    x, mel = _audio(2, frames=4)
    z, _ = flow.transform(x, mel)
    cut = 20
    cont = flow.transform.inverse_after(z[..., cut:], mel, history=x[..., :cut])[0]
    torch.testing.assert_close(cont, x[..., cut:], rtol=1e-8, atol=1e-10)
    sample = flow.sample(2, mel, history=x[..., :cut])
    assert sample.shape == (2, 1, x.shape[-1] - cut)


def test_zero_network_scores_the_gaussian_lpc_floor():
    layer = _layer(order=4)
    flow = Flow(Compose([layer, _stack(SequenceMAF, zero=True)]), StandardNormal(1)).double()
    x, mel = _audio(3)
    e, _ = layer(x, mel)
    _, log_gain = layer.conditioner(x, mel)
    floor = (-0.5 * e.square() - 0.5 * math.log(2 * math.pi) - log_gain).flatten(1).sum(1)
    torch.testing.assert_close(flow.log_prob(x, mel), floor)


def test_per_step_gaussians_through_the_filter():
    student = Compose([_layer(order=4), _stack(SequenceIAF)])
    x_mel = _audio(1)[1]
    z = torch.randn(1, 1, T, dtype=torch.float64)
    g = generated_gaussian(student, z, x_mel)
    x, _ = student.inverse(z, x_mel)
    torch.testing.assert_close(g.values, x)
    jac = torch.autograd.functional.jacobian(lambda u: student.inverse(u, x_mel)[0],
                                             z).reshape(T, T)
    assert torch.all(jac.triu(1) == 0)
    torch.testing.assert_close(jac.diagonal(), g.log_scale.exp().flatten())
    mean_jac = torch.autograd.functional.jacobian(
        lambda u: generated_gaussian(student, u, x_mel).mean, z).reshape(T, T)
    assert torch.all(mean_jac.triu(0) == 0), "M_t depends on z_t or a later z"

    teacher = Compose([_layer(order=4), _stack(SequenceMAF)])
    x, mel = _audio(2)
    g = scored_gaussian(teacher, x, mel)
    torch.testing.assert_close(g.log_prob(x), Flow(teacher, StandardNormal(1)).log_prob(x, mel))


def test_closed_form_kl_through_the_filter_matches_monte_carlo():
    n = 4000
    _, mel = _audio(1)
    student = Flow(Compose([_layer(order=4), _stack(SequenceIAF, flows=1)]),
                   StandardNormal(1)).double()
    teacher = Flow(Compose([_layer(order=4), _stack(SequenceMAF, flows=1)]),
                   StandardNormal(1)).double()
    with torch.no_grad():  # a different network: a clearly positive KL
        for p in teacher.parameters():
            p.add_(0.2 * torch.randn_like(p))
    task = DistillTask(student, teacher, stft_weight=0.0)
    batch = {"x": torch.zeros(n, 1, T, dtype=torch.float64), "context": mel.expand(n, -1, -1),
             "index": torch.arange(n)}
    torch.manual_seed(0)
    with torch.no_grad():
        terms = task.terms(batch)
    closed, mc = terms["kl"] * T, terms["kl_mc"] * T  # nats per sequence
    assert float(closed.mean()) > 0.5
    diff = closed - mc
    assert abs(float(diff.mean())) < 3 * float(diff.std() / math.sqrt(n))
    assert float(closed.std()) < float(mc.std())
