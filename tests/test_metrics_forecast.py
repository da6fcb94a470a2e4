"""Forecast metrics against properscoring, closed forms for Gaussians and direct loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import seqflow.metrics.forecast as forecast_module
from seqflow.metrics import (
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


def _random_forecast(k=3, n=40, h=5, d=2, seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    samples = rng.normal(1.0, 2.0, size=(k, n, h, d))
    target = rng.normal(0.5, 2.5, size=(k, h, d))
    return samples, target


def test_crps_matches_properscoring() -> None:
    ps = pytest.importorskip("properscoring")
    samples, target = _random_forecast()
    expected = ps.crps_ensemble(target, np.moveaxis(samples, 1, -1))
    np.testing.assert_allclose(crps(samples, target), expected, rtol=1e-10, atol=1e-12)


def test_crps_with_tied_samples_matches_properscoring() -> None:
    ps = pytest.importorskip("properscoring")
    rng = np.random.default_rng(1)
    samples = rng.integers(-3, 4, size=(2, 25, 3, 1)).astype(float)
    target = rng.integers(-3, 4, size=(2, 3, 1)).astype(float)
    expected = ps.crps_ensemble(target, np.moveaxis(samples, 1, -1))
    np.testing.assert_allclose(crps(samples, target), expected, rtol=1e-10, atol=1e-12)


def test_crps_of_gaussian_samples_matches_closed_form() -> None:
    # CRPS(N(mu, s^2), y) = s * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)), z = (y - mu) / s.
    # The sample estimator averages |X - X'| over all N^2 pairs (zeros on the diagonal), so its
    # expectation exceeds the CRPS by s / (N sqrt(pi)).
    mu, s = 0.3, 1.7
    ys = np.array([-3.0, -0.5, 0.3, 1.0, 4.0])
    reps, n = 200, 1000
    samples = np.random.default_rng(2).normal(mu, s, size=(reps, n, len(ys), 1))
    target = np.broadcast_to(ys[None, :, None], (reps, len(ys), 1))
    estimates = crps(samples, target)[..., 0]
    z = (ys - mu) / s
    closed = s * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    expected = closed + s / (n * math.sqrt(math.pi))
    standard_error = estimates.std(axis=0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(estimates.mean(axis=0) - expected) < 4 * standard_error)


def test_normalized_crps_and_mean_crps() -> None:
    ps = pytest.importorskip("properscoring")
    samples, target = _random_forecast(seed=3)
    per_entry = ps.crps_ensemble(target, np.moveaxis(samples, 1, -1))
    assert mean_crps(samples, target) == pytest.approx(per_entry.mean(), rel=1e-10)
    assert normalized_crps(samples, target) == pytest.approx(
        per_entry.sum() / np.abs(target).sum(), rel=1e-10
    )


def test_mask_excludes_entries() -> None:
    ps = pytest.importorskip("properscoring")
    samples, target = _random_forecast(seed=4)
    mask = np.random.default_rng(5).random(target.shape) < 0.6
    per_entry = ps.crps_ensemble(target, np.moveaxis(samples, 1, -1))[mask]
    target_nan = np.where(mask, target, np.nan)
    scores = crps(samples, target_nan, mask)
    assert np.isnan(scores[~mask]).all()
    np.testing.assert_allclose(scores[mask], per_entry, rtol=1e-10)
    assert mean_crps(samples, target_nan, mask) == pytest.approx(per_entry.mean(), rel=1e-10)
    assert normalized_crps(samples, target_nan, mask) == pytest.approx(
        per_entry.sum() / np.abs(target[mask]).sum(), rel=1e-10
    )
    # Changing what sits at unobserved entries changes nothing.
    garbage = np.where(mask, target, 1e6)
    for metric in (mean_crps, crps_sum, energy_score):
        assert metric(samples, garbage, mask) == pytest.approx(metric(samples, target_nan, mask))
    assert interval_coverage(samples, garbage, 0.9, mask) == interval_coverage(
        samples, target_nan, 0.9, mask
    )


def test_unmasked_nan_and_empty_mask_raise() -> None:
    samples, target = _random_forecast(seed=6)
    target[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="mask them"):
        mean_crps(samples, target)
    with pytest.raises(ValueError, match="excludes every entry"):
        mean_crps(samples, target, np.zeros(target.shape, dtype=bool))
    with pytest.raises(ValueError, match="does not match"):
        mean_crps(samples, target[:, :-1])


def test_torch_inputs_match_numpy() -> None:
    samples, target = _random_forecast(seed=7)
    assert mean_crps(torch.from_numpy(samples), torch.from_numpy(target)) == pytest.approx(
        mean_crps(samples, target), rel=1e-12
    )


def test_crps_sum_matches_properscoring_on_summed_variables() -> None:
    ps = pytest.importorskip("properscoring")
    samples, target = _random_forecast(d=4, seed=8)
    mask = np.random.default_rng(9).random(target.shape) < 0.7
    mask[0, 0] = False  # a step with nothing observed is skipped
    summed_samples = np.where(mask[:, None], samples, 0.0).sum(-1)
    summed_target = np.where(mask, target, 0.0).sum(-1)
    keep = mask.any(-1)
    scores = ps.crps_ensemble(summed_target, np.moveaxis(summed_samples, 1, -1))[keep]
    expected = scores.sum() / np.abs(summed_target[keep]).sum()
    assert crps_sum(samples, target, mask) == pytest.approx(expected, rel=1e-10)


def test_energy_score_is_crps_in_one_dimension() -> None:
    samples, target = _random_forecast(d=1, seed=10)
    assert energy_score(samples, target) == pytest.approx(mean_crps(samples, target), rel=1e-10)


@pytest.mark.parametrize("block_elements", [1 << 22, 100, 1])
def test_energy_score_matches_double_loop(block_elements: int, monkeypatch) -> None:
    # Small blocks force the pairwise sum through its row and step chunking.
    monkeypatch.setattr(forecast_module, "_PAIRWISE_BLOCK_ELEMENTS", block_elements)
    samples, target = _random_forecast(k=2, n=12, h=3, d=3, seed=11)
    mask = np.ones(target.shape, dtype=bool)
    mask[1, 2, 0] = False
    scores = []
    for k in range(2):
        for h in range(3):
            keep = mask[k, h]
            xs, y = samples[k, :, h][:, keep], target[k, h][keep]
            first = np.mean([np.sqrt(np.sum((x - y) ** 2)) for x in xs])
            second = np.mean([np.sqrt(np.sum((a - b) ** 2)) for a in xs for b in xs])
            scores.append(first - 0.5 * second)
    assert energy_score(samples, target, mask) == pytest.approx(np.mean(scores), rel=1e-10)


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_coverage_of_calibrated_and_overconfident_forecasts(level: float) -> None:
    rng = np.random.default_rng(12)
    k, n, h, d = 400, 400, 5, 2
    target = rng.standard_normal((k, h, d))
    entries = target.size
    tolerance = 4 * math.sqrt(level * (1 - level) / entries)
    calibrated = rng.standard_normal((k, n, h, d))
    assert interval_coverage(calibrated, target, level) == pytest.approx(level, abs=tolerance)
    # Samples with half the true spread cover P(|Z| <= z_q / 2) = 2 Phi(z_q / 2) - 1.
    narrow = 0.5 * calibrated
    expected = 2 * norm.cdf(0.5 * norm.ppf((1 + level) / 2)) - 1
    assert interval_coverage(narrow, target, level) == pytest.approx(expected, abs=tolerance)


def test_coverage_interval_endpoints_are_exact_quantiles() -> None:
    # 101 samples 0..100: linear-interpolation quantiles 0.05 and 0.95 are 5 and 95; 0.25 and
    # 0.75 are 25 and 75. Endpoints count as inside.
    samples = np.arange(101.0)[None, :, None, None].repeat(6, axis=2)
    target = np.array([4.9, 5.0, 25.0, 75.0, 95.0, 95.1])[None, :, None]
    assert interval_coverage(samples, target, 0.9) == pytest.approx(4 / 6)
    assert interval_coverage(samples, target, 0.5) == pytest.approx(2 / 6)


def _seasonal_series(k: int, t: int, d: int, season: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phase = np.sin(2 * np.pi * np.arange(t) / season)
    return 3 * phase[None, :, None] + rng.normal(0, 0.5, size=(k, t, d)) + 10


def test_mase_of_perfect_forecast_is_zero() -> None:
    series = _seasonal_series(3, 60, 2, 12, seed=13)
    history, future = series[:, :48], series[:, 48:]
    perfect = np.repeat(future[:, None], 5, axis=1)
    assert seasonal_mase(perfect, future, history, season=12) == 0.0


def test_mase_of_seasonal_naive_forecast_matches_loop() -> None:
    season, horizon = 12, 18
    series = _seasonal_series(2, 60 + horizon, 3, season, seed=14)
    history, future = series[:, :60], series[:, 60:]
    naive = np.stack(
        [history[:, 60 - season + (h % season)] for h in range(horizon)], axis=1
    )  # (K, H, D): y_hat(T + h) = y(T + h - season * ceil((h + 1) / season))
    samples = np.repeat(naive[:, None], 3, axis=1)
    values = []
    for k in range(2):
        for d in range(3):
            scale = np.mean(
                [abs(history[k, t, d] - history[k, t - season, d]) for t in range(season, 60)]
            )
            values.append(np.mean(np.abs(naive[k, :, d] - future[k, :, d])) / scale)
    assert seasonal_mase(samples, future, history, season) == pytest.approx(
        np.mean(values), rel=1e-12
    )


def test_mase_uses_median_and_masks() -> None:
    season = 4
    series = _seasonal_series(1, 40, 1, season, seed=15)
    history, future = series[:, :32], series[:, 32:]
    rng = np.random.default_rng(16)
    samples = future[:, None] + rng.normal(0, 1, size=(1, 101, 8, 1))
    history_mask = np.ones(history.shape, dtype=bool)
    history_mask[0, 5] = False
    history_nan = np.where(history_mask, history, np.nan)
    mask = np.ones(future.shape, dtype=bool)
    mask[0, 3] = False
    pairs = [
        abs(history[0, t, 0] - history[0, t - season, 0])
        for t in range(season, 32)
        if t != 5 and t - season != 5
    ]
    median = np.median(samples[0, :, :, 0], axis=0)
    keep = mask[0, :, 0]
    expected = np.mean(np.abs(median - future[0, :, 0])[keep]) / np.mean(pairs)
    result = seasonal_mase(samples, future, history_nan, season, mask, history_mask)
    assert result == pytest.approx(expected, rel=1e-12)


def test_mase_refuses_constant_history() -> None:
    history = np.ones((1, 20, 1))
    samples = np.zeros((1, 3, 4, 1))
    with pytest.raises(ValueError, match="window 0, variable 0"):
        seasonal_mase(samples, np.zeros((1, 4, 1)), history, season=2)
    assert np.isnan(seasonal_scale(history, 2, np.zeros(history.shape, dtype=bool))).all()


def test_forecast_metrics_summary() -> None:
    samples, target = _random_forecast(seed=17)
    history = _seasonal_series(3, 30, 2, 5, seed=18)
    summary = forecast_metrics(samples, target, history=history, season=5)
    assert summary.mean_crps == mean_crps(samples, target)
    assert summary.coverage_90 == interval_coverage(samples, target, 0.9)
    assert summary.mase == seasonal_mase(samples, target, history, 5)
    assert forecast_metrics(samples, target).mase is None
    with pytest.raises(ValueError, match="together"):
        forecast_metrics(samples, target, history=history)


def test_crps_per_variable_matches_properscoring_per_variable() -> None:
    ps = pytest.importorskip("properscoring")
    samples, target = _random_forecast(d=3, seed=19)
    mask = np.random.default_rng(20).random(target.shape) < 0.7
    per_entry = ps.crps_ensemble(target, np.moveaxis(samples, 1, -1))
    expected = [per_entry[..., d][mask[..., d]].sum() / np.abs(target[..., d][mask[..., d]]).sum()
                for d in range(3)]
    np.testing.assert_allclose(crps_per_variable(samples, target, mask), expected, rtol=1e-10)
    assert variable_averaged_crps(samples, target, mask) == pytest.approx(np.mean(expected),
                                                                          rel=1e-10)
    summary = forecast_metrics(samples, target, mask)
    assert summary.variable_averaged_crps == pytest.approx(np.mean(expected), rel=1e-12)
    np.testing.assert_allclose(summary.crps_per_variable, expected, rtol=1e-10)


def test_variable_averaged_crps_is_free_of_each_variables_units() -> None:
    # Measuring one variable in units 1000 times smaller multiplies its CRPS and its |y| by
    # 1000: the per-variable figures do not move, the pooled normalized CRPS does.
    samples, target = _random_forecast(d=2, seed=21)
    units = np.array([1000.0, 1.0])
    before = crps_per_variable(samples, target)
    after = crps_per_variable(samples * units, target * units)
    np.testing.assert_allclose(after, before, rtol=1e-10)
    pooled = normalized_crps(samples * units, target * units)
    assert pooled == pytest.approx(before[0], rel=1e-3)  # the large variable dominates
    assert variable_averaged_crps(samples * units, target * units) == pytest.approx(
        before.mean(), rel=1e-10)
    one = samples[..., :1], target[..., :1]
    assert variable_averaged_crps(*one) == pytest.approx(normalized_crps(*one), rel=1e-12)


def test_crps_per_variable_refuses_a_variable_without_scale() -> None:
    samples, target = _random_forecast(d=2, seed=22)
    target[..., 1] = 0.0
    with pytest.raises(ValueError, match="variable 1"):
        crps_per_variable(samples, target)


def test_energy_score_of_standard_gaussian_samples_matches_closed_form() -> None:
    # X ~ N(0, I_d), y = 0: E||X|| = sqrt(2) G and E||X - X'|| = 2 G with
    # G = Gamma((d + 1) / 2) / Gamma(d / 2) (chi distribution means), so ES = (sqrt(2) - 1) G.
    # The sample spread averages over all N^2 pairs, zeros on the diagonal included, so its
    # expectation is (1 - 1 / N) 2 G.
    d, n, groups, per_group = 3, 100, 20, 25
    G = math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    expected = math.sqrt(2) * G - (1 - 1 / n) * G
    rng = np.random.default_rng(23)
    scores = [energy_score(rng.standard_normal((per_group, n, 1, d)), np.zeros((per_group, 1, d)))
              for _ in range(groups)]
    standard_error = np.std(scores, ddof=1) / math.sqrt(groups)
    assert abs(np.mean(scores) - expected) < 4 * standard_error


def test_weighted_quantile_loss_by_hand() -> None:
    """y = (10, 20); levels 0.1, 0.5, 0.9. Pinball losses (y - x)(q - 1{y < x}):
    q=0.1: 0.2 + 4.5; q=0.5: 0 + 1.0; q=0.9: 0.3 + 0.2; total 6.2, so WQL = 2 * 6.2 / (3 * 30)."""
    target = np.array([10.0, 20.0]).reshape(1, 2, 1)
    quantiles = np.array([[8.0, 25.0], [10.0, 18.0], [13.0, 22.0]]).reshape(1, 3, 2, 1)
    assert weighted_quantile_loss(quantiles, target, [0.1, 0.5, 0.9]) == pytest.approx(
        12.4 / 90, rel=1e-12)


def test_weighted_quantile_loss_matches_a_direct_loop_with_a_mask() -> None:
    rng = np.random.default_rng(3)
    levels = np.arange(1, 10) / 10
    quantiles = np.sort(rng.normal(5, 2, size=(4, 9, 6, 2)), axis=1)
    target = rng.normal(5, 2, size=(4, 6, 2))
    mask = rng.random(target.shape) > 0.2
    loss, scale = 0.0, 0.0
    for k, h, d in zip(*np.nonzero(mask), strict=True):
        y = target[k, h, d]
        scale += abs(y)
        for j, q in enumerate(levels):
            x = quantiles[k, j, h, d]
            loss += max(q * (y - x), (q - 1) * (y - x))
    expected = 2 * loss / (len(levels) * scale)
    assert weighted_quantile_loss(quantiles, np.where(mask, target, np.nan), levels,
                                  mask) == pytest.approx(expected, rel=1e-12)


def test_weighted_quantile_loss_over_many_levels_approaches_the_normalized_crps() -> None:
    """CRPS = integral over q of 2 pinball_q (Gneiting & Raftery 2007): Gaussian quantiles at
    the midpoints of 2000 levels against properscoring's closed-form Gaussian CRPS."""
    ps = pytest.importorskip("properscoring")
    rng = np.random.default_rng(4)
    mu, sigma = rng.normal(10, 1, size=(5, 3, 1)), rng.uniform(0.5, 2, size=(5, 3, 1))
    target = rng.normal(10, 1.5, size=(5, 3, 1))
    levels = (np.arange(2000) + 0.5) / 2000
    quantiles = mu[:, None] + sigma[:, None] * norm.ppf(levels)[None, :, None, None]
    expected = ps.crps_gaussian(target, mu, sigma).sum() / np.abs(target).sum()
    assert weighted_quantile_loss(quantiles, target, levels) == pytest.approx(expected,
                                                                             rel=1e-4)


def test_weighted_quantile_loss_of_a_point_forecast_is_its_wape() -> None:
    rng = np.random.default_rng(5)
    point, target = rng.normal(3, 1, size=(2, 4, 1)), rng.normal(3, 1, size=(2, 4, 1))
    levels = np.arange(1, 10) / 10
    quantiles = np.repeat(point[:, None], 9, axis=1)
    wape = np.abs(point - target).sum() / np.abs(target).sum()
    assert weighted_quantile_loss(quantiles, target, levels) == pytest.approx(wape, rel=1e-12)


def test_weighted_quantile_loss_refuses_bad_levels() -> None:
    quantiles, target = np.ones((1, 2, 3, 1)), np.ones((1, 3, 1))
    with pytest.raises(ValueError, match="levels"):
        weighted_quantile_loss(quantiles, target, [0.5, 1.0])
    with pytest.raises(ValueError, match="3 levels|2 levels"):
        weighted_quantile_loss(quantiles, target, [0.1, 0.5, 0.9])


def test_point_mase_by_hand_with_ragged_histories() -> None:
    """Series 1: history 1 2 4 3 5, season 2: scale (3 + 1 + 1) / 3; errors 1 and 2, so
    MASE 1.5 / (5/3) = 0.9. Series 2 (history 2 4 6, left-padded): scale 4; errors 4 and 0:
    0.5. The mean over series is 0.7."""
    history = np.array([[1, 2, 4, 3, 5], [0, 0, 2, 4, 6]], dtype=float)[..., None]
    seen = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], dtype=bool)[..., None]
    point = np.array([[6, 6], [10, 7]], dtype=float)[..., None]
    target = np.array([[5, 8], [6, 7]], dtype=float)[..., None]
    assert point_mase(point, target, history, 2, history_mask=seen) == pytest.approx(0.7)


def test_point_mase_of_the_sample_median_is_seasonal_mase() -> None:
    rng = np.random.default_rng(6)
    samples, target = rng.normal(size=(3, 11, 4, 2)), rng.normal(size=(3, 4, 2))
    history = rng.normal(size=(3, 20, 2))
    assert point_mase(np.median(samples, axis=1), target, history, 4) == pytest.approx(
        seasonal_mase(samples, target, history, 4), rel=1e-12)
