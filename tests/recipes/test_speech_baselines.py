"""The speech baselines: LPC against a direct least-squares solve and the Yule-Walker solution
of a known AR process, the adaptive scale's maximum-likelihood fit, Gaussian log-densities."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "speech"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"speech_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


baselines = load("baselines")


def ar_process(coefs, length, sigma, rng, burn_in=500):
    x = np.zeros(length + burn_in)
    e = rng.standard_normal(length + burn_in) * sigma
    for t in range(length + burn_in):
        x[t] = e[t] + sum(a * x[t - 1 - k] for k, a in enumerate(coefs) if t - 1 - k >= 0)
    return x[burn_in:]


def test_lpc_equals_a_direct_least_squares_solve_over_several_files():
    rng = np.random.default_rng(0)
    signals = [rng.standard_normal(n).cumsum() * 0.01 + rng.standard_normal(n) * 0.1
               for n in (50, 173, 20)]  # one file shorter than the order's window
    order = 6
    rows, targets = [], []
    for x in signals:  # the design matrix written out, zeros before each file's start
        for t in range(len(x)):
            rows.append([x[t - 1 - k] if t - 1 - k >= 0 else 0.0 for k in range(order)])
            targets.append(x[t])
    direct, *_ = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)
    lpc = baselines.LPC.fit(signals, order)
    np.testing.assert_allclose(lpc.coefs, direct, rtol=1e-9, atol=1e-12)
    residuals = np.array(targets) - np.array(rows) @ direct
    assert lpc.log_sigma == pytest.approx(0.5 * math.log(np.mean(residuals**2)), rel=1e-9)
    # small chunks accumulate the same normal equations
    gram, cross, count = baselines.normal_equations(signals, order, chunk=7)
    np.testing.assert_allclose(np.linalg.solve(gram, cross), direct, rtol=1e-9, atol=1e-12)
    assert count == len(targets)


def test_lpc_recovers_an_ar2_process_and_its_yule_walker_solution():
    rng = np.random.default_rng(1)
    a1, a2, sigma = 1.3, -0.6, 0.05
    x = ar_process([a1, a2], 40000, sigma, rng)
    lpc = baselines.LPC.fit([x], 2)
    # Yule-Walker: [[r0, r1], [r1, r0]] a = [r1, r2] with sample autocovariances
    r = [float(np.dot(x[: len(x) - k], x[k:])) / len(x) for k in range(3)]
    yule_walker = np.linalg.solve([[r[0], r[1]], [r[1], r[0]]], [r[1], r[2]])
    np.testing.assert_allclose(lpc.coefs, yule_walker, atol=2e-3)
    np.testing.assert_allclose(lpc.coefs, [a1, a2], atol=0.02)
    assert math.exp(lpc.log_sigma) == pytest.approx(sigma, rel=0.02)
    # its score is the Gaussian log-density of the residuals
    assert lpc.log_prob(x) == pytest.approx(
        float(np.sum(-0.5 * math.log(2 * math.pi) - lpc.log_sigma
                     - 0.5 * baselines.lpc_residual(x, lpc.coefs) ** 2
                     / math.exp(2 * lpc.log_sigma))))


def test_adaptive_scale_follows_the_loudness_and_maximizes_the_likelihood():
    """White noise whose std is constant within each frame: the best scale is the frame RMS."""
    rng = np.random.default_rng(2)
    hop, frames = 64, 400
    envelope = np.repeat(np.exp(rng.uniform(-6, -1, frames)), hop)
    signals = [envelope * rng.standard_normal(hop * frames) for _ in range(3)]
    lpc = baselines.LPC.fit(signals, 1)
    adaptive = baselines.AdaptiveLPC.fit(signals, lpc, hop)
    # rms_f estimates the frame's std: log sigma ~ log rms_f, i.e. beta ~ 1, alpha ~ 0
    assert adaptive.beta == pytest.approx(1.0, abs=0.05)
    assert adaptive.alpha == pytest.approx(0.0, abs=0.3)
    # the fitted parameters maximize the likelihood: nudging them lowers it
    best = sum(adaptive.log_prob(x) for x in signals)
    for d_alpha, d_beta in ((0.05, 0), (-0.05, 0), (0, 0.01), (0, -0.01)):
        other = baselines.AdaptiveLPC(adaptive.coefs, adaptive.alpha + d_alpha,
                                      adaptive.beta + d_beta, hop)
        assert sum(other.log_prob(x) for x in signals) < best


def test_frame_log_rms_and_the_iid_gaussian():
    x = np.array([3.0, 4.0, 0.0, 0.0, 1.0])  # frames of 2: rms 3.536, 0, 1 (partial frame)
    got = baselines.frame_log_rms(x, 2)
    floor = 2.0**-15
    expected = np.log(np.array([math.sqrt(12.5)] * 2 + [0.0] * 2 + [1.0]) + floor)
    np.testing.assert_allclose(got, expected)
    gaussian = baselines.IIDGaussian.fit([x[:3], x[3:]])
    assert gaussian.mean == pytest.approx(x.mean())
    assert math.exp(2 * gaussian.log_sigma) == pytest.approx(x.var())
    assert gaussian.log_prob(x) == pytest.approx(
        float(np.sum(-0.5 * np.log(2 * np.pi * x.var()) - (x - x.mean()) ** 2 / (2 * x.var()))))


def test_frame_arguments_use_torchaudio_spelling():
    import dataclasses
    import inspect

    assert "hop_length" in inspect.signature(baselines.frame_log_rms).parameters
    assert "hop_length" in inspect.signature(baselines.fit_all).parameters
    assert "hop_length" in inspect.signature(baselines.AdaptiveLPC.fit).parameters
    assert "hop_length" in {f.name for f in dataclasses.fields(baselines.AdaptiveLPC)}
