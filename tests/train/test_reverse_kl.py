"""Reverse-KL fitting of flows to unnormalized 2-D targets, against Gaussian closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from seqflow import DiagonalNormal, Flow
from seqflow.train import config_from_dict, train
from seqflow.train.objectives.reverse_kl import (
    ReverseKLTask,
    SampleSlots,
    grid_2d,
    log_normalizer_on_grid,
    reverse_kl,
)
from seqflow.transforms import IAF, Compose, Reverse

MEAN = torch.tensor([1.0, -0.5])
COV = torch.tensor([[1.0, 0.45], [0.45, 0.36]])  # correlation 0.75


def gaussian_energy(z: torch.Tensor) -> torch.Tensor:
    """``U(z) = (z - m)^T C^{-1} (z - m) / 2``, so ``Z = 2 pi sqrt(det C)``."""
    d = z - MEAN.to(z)
    return 0.5 * (d * torch.linalg.solve(COV.to(z), d.T).T).sum(1)


LOG_Z = math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(COV)))


def test_grid_normalizer_matches_the_gaussian_closed_form():
    assert log_normalizer_on_grid(gaussian_energy, -7, 7, 700) == pytest.approx(LOG_Z, abs=1e-6)
    points, area = grid_2d(-1.0, 1.0, 4)
    assert points.shape == (16, 2) and area == pytest.approx(0.25)
    assert float(points[:, 0].min()) == pytest.approx(-0.75)  # cell midpoints


def test_kl_of_the_exact_target_is_zero():
    base = DiagonalNormal(2).double()
    with torch.no_grad():
        base.loc.copy_(torch.tensor([0.3, -1.0]))
        base.log_scale.copy_(torch.tensor([0.2, -0.4]))
    scale = base.log_scale.detach().exp()

    def energy(z):
        return 0.5 * ((z - base.loc.detach()) / scale).square().sum(1)

    log_z = math.log(2 * math.pi) + float(base.log_scale.detach().sum())
    kl, error = reverse_kl(Flow(Compose([]), base), energy, log_z, num_samples=1000)
    assert abs(kl) < 1e-12 and error < 1e-12


def test_annealed_loss_scales_the_energy():
    torch.manual_seed(0)
    flow = Flow(Compose([IAF(2, hidden_features=8)]), DiagonalNormal(2))
    task = ReverseKLTask(flow, gaussian_energy, anneal_steps=10, anneal_start=0.2,
                         log_normalizer=LOG_Z)
    task.step = 5
    torch.manual_seed(1)
    out = task({"x": torch.zeros(64, 0)})
    torch.manual_seed(1)
    z, log_q = flow.sample_and_log_prob(64)
    torch.testing.assert_close(out.loss, (log_q + 0.6 * gaussian_energy(z)).mean())
    torch.testing.assert_close(out.metrics["kl"], (log_q + gaussian_energy(z)).mean() + LOG_Z)


def test_engine_fits_a_correlated_gaussian_to_kl_below_001(tmp_path):
    torch.manual_seed(0)
    flow = Flow(Compose([IAF(2, hidden_features=16), Reverse(2), IAF(2, hidden_features=16)]),
                DiagonalNormal(2))
    log_z = log_normalizer_on_grid(gaussian_energy)
    cfg = config_from_dict({
        "model": {"kind": "custom"},
        "train": {"max_steps": 200, "batch_size": 128, "lr": 0.02, "lr_schedule": "cosine",
                  "eval_every": 200, "eval_batch_size": 4096, "checkpoint_every": 200,
                  "log_every": 100, "log_with": "none", "progress": False, "cpu_threads": 1,
                  "mixed_precision": "no"},
    })
    task = ReverseKLTask(flow, gaussian_energy, anneal_steps=50, log_normalizer=log_z)
    result = train(cfg, tmp_path / "run", task=task,
                   splits={"train": SampleSlots(12_800), "val": SampleSlots(4096)})
    assert result.val["kl"] == pytest.approx(result.val["free_energy"] + log_z)
    torch.manual_seed(1)
    kl, error = reverse_kl(flow, gaussian_energy, LOG_Z, num_samples=200_000)
    assert error < 0.002
    assert kl < 0.01
    assert kl > -3 * error  # a KL estimate with the true normalizer is not negative


def test_bad_energy_shape_is_named():
    flow = Flow(Compose([]), DiagonalNormal(2))
    task = ReverseKLTask(flow, lambda z: z)
    with pytest.raises(ValueError, match=r"energy maps samples \(4, 2\) to shape \(4, 2\)"):
        task({"x": torch.zeros(4, 0)})
