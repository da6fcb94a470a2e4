"""ELBO and IWAE against the closed forms of a linear-Gaussian model.

``p(z) = N(0, I_2)``, ``p(x | z) = N(A z + b, s^2 I_3)``: then ``p(x) = N(b, A A^T + s^2 I)`` and
``p(z | x) = N(S A^T (x - b) / s^2, S)`` with ``S = (I + A^T A / s^2)^{-1}``. With orthogonal
columns of ``A``, ``S`` is diagonal, so the true posterior is in the diagonal-Gaussian family
and an encoder ``h = x`` with the right linear head makes ``q = p(z | x)`` exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from seqflow import ConditionalDiagonalNormal, Flow, StandardNormal
from seqflow.distributions import LatentVariableModel, bound_terms, variational_bounds
from seqflow.train import config_from_dict, train
from seqflow.train.batches import RowDataset
from seqflow.train.objectives import ELBOTask, IWAETask, annealed_beta
from seqflow.train.registry import build_task
from seqflow.transforms import Compose

F64 = torch.float64
NOISE = 0.5


class LinearGaussian(LatentVariableModel):
    """The model above with a diagonal-Gaussian posterior reading ``h = x``."""

    def __init__(self, a: Tensor, b: Tensor):
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.prior = StandardNormal(2)
        self.posterior = Flow(Compose([]), ConditionalDiagonalNormal(2, context_features=3))

    def encode(self, x: Tensor) -> Tensor:
        return x

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        mean = z @ self.a.T + self.b
        return torch.distributions.Normal(mean, NOISE).log_prob(x).sum(1)

    # Closed forms (independent of the code under test).
    def log_evidence(self, x: Tensor) -> Tensor:
        cov = self.a @ self.a.T + NOISE**2 * torch.eye(3, dtype=F64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def true_posterior(self) -> tuple[Tensor, Tensor]:
        """``(M, c, S)`` with posterior mean ``M x + c`` and covariance ``S``."""
        cov = torch.linalg.inv(torch.eye(2, dtype=F64) + self.a.T @ self.a / NOISE**2)
        gain = cov @ self.a.T / NOISE**2
        return gain, -gain @ self.b, cov

    def set_posterior(self, loc_shift: float = 0.0, scale_factor: float = 1.0) -> None:
        """Make the head compute the true posterior (optionally shifted / widened)."""
        gain, offset, cov = self.true_posterior()
        head = self.posterior.base.head
        with torch.no_grad():
            head.weight.zero_()
            head.weight[:2] = gain
            head.bias[:2] = offset + loc_shift
            head.bias[2:] = 0.5 * torch.log(torch.diag(cov)) + math.log(scale_factor)


def _model(orthogonal: bool = True) -> LinearGaussian:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, generator=g, dtype=F64)
    if orthogonal:
        q, _ = torch.linalg.qr(a)
        a = q * torch.tensor([1.5, 0.7], dtype=F64)
    return LinearGaussian(a, torch.tensor([0.3, -0.2, 0.1], dtype=F64)).double()


def _data(model: LinearGaussian, n: int, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=F64)
    return z @ model.a.T + model.b + NOISE * torch.randn(n, 3, generator=g, dtype=F64)


def test_elbo_equals_log_evidence_when_the_posterior_is_exact():
    model = _model()
    cov = model.true_posterior()[2]
    assert torch.allclose(cov, torch.diag(torch.diag(cov)))  # in the diagonal family
    model.set_posterior()
    x = _data(model, 50)
    terms = bound_terms(model, x, num_samples=7)
    # Every importance weight is p(x, z) / p(z | x) = p(x): the bound is tight per sample.
    torch.testing.assert_close(terms.log_weights(), model.log_evidence(x)[:, None].expand(50, 7),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(-ELBOTask(model).evaluate({"x": x}), model.log_evidence(x),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(terms.iwae(), model.log_evidence(x), rtol=0, atol=1e-10)


def test_elbo_gap_is_the_kl_to_the_true_posterior_and_kl_is_the_rate():
    """For a wrong q: E[ELBO] = log p(x) - KL(q || p(z|x)) and E[rate] = KL(q || p(z))."""
    model = _model(orthogonal=False)
    model.set_posterior(loc_shift=0.4, scale_factor=1.3)
    x = _data(model, 3)
    torch.manual_seed(0)
    terms = bound_terms(model, x, num_samples=200_000, max_rows=100_000)
    gain, offset, cov = model.true_posterior()
    loc, log_scale = model.posterior.base.params(x, 3)
    q = torch.distributions.MultivariateNormal(loc, torch.diag_embed(log_scale.exp().square()))
    exact = torch.distributions.MultivariateNormal(x @ gain.T + offset, cov)
    prior = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64),
                                                   torch.eye(2, dtype=F64))
    gap = torch.distributions.kl_divergence(q, exact)
    rate = terms.log_posterior - terms.log_prior
    for estimate, samples, expected in (
            (terms.elbo(), terms.log_weights(), model.log_evidence(x) - gap),
            (terms.kl(), rate, torch.distributions.kl_divergence(q, prior))):
        error = samples.std(dim=1) / math.sqrt(samples.shape[1])
        assert ((estimate - expected).abs() < 4 * error).all()
        assert (error < 0.01).all()


def test_iwae_increases_with_k_and_approaches_the_log_evidence():
    model = _model()
    model.set_posterior(loc_shift=0.6, scale_factor=1.5)
    x = _data(model, 1)
    log_px = float(model.log_evidence(x))
    torch.manual_seed(0)
    means, errors = [], []
    for k in (1, 4, 16, 64, 256, 1024):
        with torch.no_grad():
                replicates = bound_terms(model, x.expand(400, 3), num_samples=k,
                                         max_rows=50_000).iwae()
        means.append(float(replicates.mean()))
        errors.append(float(replicates.std()) / math.sqrt(len(replicates)))
    for i in range(1, len(means)):  # monotone in expectation, up to Monte Carlo error
        assert means[i] > means[i - 1] - 3 * math.hypot(errors[i], errors[i - 1])
    assert means[-1] > means[0] + 0.2  # the widened, shifted q leaves a real gap at k = 1
    assert means[-1] < log_px + 3 * errors[-1]  # still a lower bound
    assert log_px - means[-1] < 0.01


def test_chunked_draws_keep_examples_and_samples_apart():
    """With chunks of 3 decoder rows, each example's weights still belong to that example."""
    model = _model()
    model.set_posterior()
    x = _data(model, 5)
    terms = bound_terms(model, x, num_samples=13, max_rows=3)
    assert terms.log_likelihood.shape == (5, 13)
    torch.testing.assert_close(terms.log_weights(), model.log_evidence(x)[:, None].expand(5, 13),
                               rtol=0, atol=1e-10)
    bounds = variational_bounds(model, x, num_samples=11, max_rows=7)
    torch.testing.assert_close(bounds["iwae"], model.log_evidence(x), rtol=0, atol=1e-10)
    torch.testing.assert_close(bounds["elbo"], bounds["reconstruction"] - bounds["kl"])


def test_annealed_loss_weights_the_kl_by_beta():
    model = _model()
    model.set_posterior(loc_shift=0.3)
    x = _data(model, 8)
    task = ELBOTask(model, num_samples=3, anneal_steps=100, anneal_start=0.1)
    assert [annealed_beta(s, 100, 0.1) for s in (0, 50, 100, 150)] == [0.1, 0.55, 1.0, 1.0]
    task.step = 50
    torch.manual_seed(3)
    out = task({"x": x})
    torch.manual_seed(3)
    terms = bound_terms(model, x, num_samples=3)
    expected = -(terms.reconstruction().mean() - 0.55 * terms.kl().mean()) / 3
    torch.testing.assert_close(out.loss, expected)
    assert float(out.metrics["beta"]) == pytest.approx(0.55)
    torch.testing.assert_close(out.metrics["elbo"], terms.elbo().mean())


def test_engine_trains_the_posterior_to_the_log_evidence(tmp_path):
    """Through the engine and the registry: a learned head closes the ELBO gap."""
    torch.manual_seed(0)
    model = _model()
    x = _data(model, 4096).float()
    model = model.float()
    cfg = config_from_dict({
        "model": {"kind": "custom", "features": 3},
        "train": {"task": "elbo", "max_steps": 400, "batch_size": 128, "lr": 0.02,
                  "lr_schedule": "cosine", "variational": {"latent_samples": 2, "anneal_steps": 50},
                  "eval_every": 400, "checkpoint_every": 400, "log_every": 100,
                  "log_with": "none", "progress": False, "cpu_threads": 1,
                  "mixed_precision": "no"},
    })
    splits = {"train": RowDataset(x[:3584]), "val": RowDataset(x[3584:])}
    result = train(cfg, tmp_path / "run", task=build_task(model, cfg), splits=splits)
    exact = float(model.double().log_evidence(x[3584:].double()).mean())
    assert result.val["elbo"] == pytest.approx(exact, abs=0.02)
    assert result.val["elbo"] < exact + 0.005


def test_iwae_task_evaluates_with_k_draws_and_flows_need_a_latent_model():
    model = _model()
    model.set_posterior(loc_shift=0.6, scale_factor=1.5)
    x = _data(model, 1).expand(200, 3)
    torch.manual_seed(0)
    elbo = -ELBOTask(model).evaluate({"x": x}).mean()
    iwae = -IWAETask(model, eval_samples=200).evaluate({"x": x}).mean()
    assert iwae > elbo + 0.2
    cfg = config_from_dict({"train": {"task": "iwae"}})
    with pytest.raises(ValueError, match="train.task=iwae: the model must be a latent-variable"):
        build_task(nn.Linear(2, 2), cfg)
