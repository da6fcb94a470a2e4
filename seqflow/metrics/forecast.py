"""Probabilistic forecast metrics from samples: CRPS, CRPS-sum, energy score, MASE, coverage;
and the weighted quantile loss (WQL) of quantile forecasts.

For a multivariate series the headline is :func:`variable_averaged_crps`: each variable's CRPS
normalized by its own sum of ``|y|``, averaged over the variables, so that no variable weighs
more for being measured in larger units. :func:`crps_sum` (the sum over variables) and
:func:`energy_score` (the joint distribution) stand beside it. :func:`mean_crps` and
:func:`normalized_crps` pool the entries of every variable: with several variables in different
units they mix those units (they stay for univariate series, where
``normalized_crps == variable_averaged_crps``).

Shapes used throughout (numpy arrays or torch tensors; computed in float64 numpy):

* ``samples``: ``(K, N, H, D)`` -- ``N`` sample paths for each of ``K`` forecast windows over a
  horizon of ``H`` steps and ``D`` variables;
* ``target``: ``(K, H, D)`` observed values;
* ``mask``: optional boolean ``(K, H, D)``, ``True`` where the target is observed. Unobserved
  entries are excluded from every metric, and ``target`` may hold NaN there.

References:
    T. Gneiting, A. E. Raftery, "Strictly proper scoring rules, prediction, and estimation",
    JASA 2007 (CRPS energy form, energy score).
    D. Salinas, M. Bohlke-Schneider, L. Callot, R. Medico, J. Gasthaus, "High-dimensional
    multivariate forecasting with low-rank Gaussian copula processes", NeurIPS 2019 (CRPS-sum).
    K. Rasul, A.-S. Sheikh, I. Schuster, U. Bergmann, R. Vollgraf, "Multivariate probabilistic
    time series forecasting via conditioned normalizing flows", ICLR 2021.
    R. J. Hyndman, A. B. Koehler, "Another look at measures of forecast accuracy", IJF 2006
    (MASE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

# Pairwise-difference blocks of the energy score are cut to about this many float64 elements.
_PAIRWISE_BLOCK_ELEMENTS = 1 << 22


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    return x


def _prepare(
    samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 ``samples``, ``target`` (zero where masked) and boolean ``mask``."""
    samples = _to_numpy(samples, "samples").astype(np.float64)
    target = _to_numpy(target, "target").astype(np.float64)
    if samples.ndim != 4:
        raise ValueError(f"samples must have shape (K, N, H, D), got {samples.shape}")
    if target.shape != (samples.shape[0],) + samples.shape[2:]:
        raise ValueError(
            f"target shape {target.shape} does not match samples {samples.shape}; "
            f"expected (K, H, D) = {(samples.shape[0],) + samples.shape[2:]}"
        )
    if samples.shape[1] < 1:
        raise ValueError(f"samples needs at least one sample (axis 1), got shape {samples.shape}")
    if mask is None:
        mask = np.ones(target.shape, dtype=bool)
    else:
        mask = _to_numpy(mask, "mask")
        if mask.dtype != bool or mask.shape != target.shape:
            raise ValueError(
                f"mask must be boolean with the target's shape {target.shape}, "
                f"got {mask.dtype} {mask.shape}"
            )
    if not np.isfinite(samples).all():
        raise ValueError("samples contain NaN or infinite values")
    if not np.isfinite(target[mask]).all():
        raise ValueError("target has NaN or infinite values at observed entries; mask them")
    if not mask.any():
        raise ValueError("mask excludes every entry; nothing to evaluate")
    return samples, np.where(mask, target, 0.0), mask


def _crps_entries(samples: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Exact sample CRPS ``E|X - y| - E|X - X'| / 2`` per entry; ``(K, N, ...)`` -> ``(K, ...)``.

    With the ``N`` samples sorted, ``x_(1) <= ... <= x_(N)``,
    ``sum_{i,j} |x_i - x_j| = 2 * sum_i (2i - N - 1) x_(i)``, so the spread term costs a sort.
    """
    n = samples.shape[1]
    ordered = np.sort(samples, axis=1)
    absolute_error = np.abs(ordered - target[:, None]).mean(axis=1)
    weights = (2.0 * np.arange(1, n + 1) - n - 1) / n**2
    half_spread = np.tensordot(weights, np.moveaxis(ordered, 1, 0), axes=1)
    return absolute_error - half_spread


def crps(samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Continuous ranked probability score of the empirical sample distribution, per entry.

    ``CRPS(F, y) = E|X - y| - 1/2 E|X - X'|`` with ``X, X'`` drawn independently from the ``N``
    samples (the empirical distribution, so the spread term averages over all ``N^2`` pairs).
    It equals ``integral (F_N(z) - 1{y <= z})^2 dz`` for the empirical CDF ``F_N`` and is computed
    exactly in ``O(N log N)`` per entry by sorting.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.

    Returns:
        ``(K, H, D)`` float64 array, NaN at unobserved entries.
    """
    samples, target, mask = _prepare(samples, target, mask)
    return np.where(mask, _crps_entries(samples, target), np.nan)


def mean_crps(samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean of :func:`crps` over observed entries, pooled over variables (in the target's units;
    a mixed-unit figure when the variables have different units).

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    return float(np.nanmean(crps(samples, target, mask)))


def normalized_crps(samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Scale-free CRPS: ``sum CRPS / sum |y|`` over observed entries, pooled over variables.

    With several variables the sums mix their units, and the variables of largest magnitude
    dominate; :func:`variable_averaged_crps` normalizes each variable by its own scale.

    This is the normalisation of the "weighted quantile loss" reported as CRPS in the
    probabilistic forecasting literature (e.g. GluonTS's ``mean_wQuantileLoss``, Rasul et al.
    2021), except that the CRPS here is the exact sample CRPS rather than an average of quantile
    losses over a grid of levels.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    samples, target, mask = _prepare(samples, target, mask)
    scale = np.abs(target[mask]).sum()
    if scale == 0:
        raise ValueError("normalized_crps: sum of |target| over observed entries is zero")
    return float(_crps_entries(samples, target)[mask].sum() / scale)


def crps_per_variable(
    samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None
) -> np.ndarray:
    """Normalized CRPS of each variable: ``sum_{k,h} CRPS(k, h, d) / sum_{k,h} |y(k, h, d)|``
    over the observed entries of variable ``d``.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.

    Returns:
        ``(D,)`` float64. A variable whose observed ``|y|`` sum to zero (or that has no
        observed entry) is refused, naming it.
    """
    samples, target, mask = _prepare(samples, target, mask)
    scores = np.where(mask, _crps_entries(samples, target), 0.0).sum(axis=(0, 1))
    scale = np.where(mask, np.abs(target), 0.0).sum(axis=(0, 1))
    if (scale == 0).any():
        d = int(np.flatnonzero(scale == 0)[0])
        raise ValueError(f"crps_per_variable: variable {d} has a zero sum of |target| over its "
                         f"{int(mask[..., d].sum())} observed entries; its normalized CRPS is "
                         "undefined")
    return scores / scale


def variable_averaged_crps(
    samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None
) -> float:
    """The headline CRPS of a multivariate forecast: the mean over the ``D`` variables of
    :func:`crps_per_variable` (each variable normalized by its own scale; equal to
    :func:`normalized_crps` when ``D = 1``).

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    return float(crps_per_variable(samples, target, mask).mean())


def crps_sum(samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """CRPS-sum: normalised CRPS of the sum over the ``D`` variables.

    ``sum_{k,h} CRPS(F_sum(k, h), sum_d y(k, h, d)) / sum_{k,h} |sum_d y(k, h, d)|`` where
    ``F_sum`` is the empirical distribution of ``sum_d X(k, n, h, d)`` over the samples. Only
    observed variables enter both sums; time steps with no observed variable are skipped.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    samples, target, mask = _prepare(samples, target, mask)
    summed_samples = np.where(mask[:, None], samples, 0.0).sum(axis=-1)
    summed_target = target.sum(axis=-1)
    any_observed = mask.any(axis=-1)
    scores = _crps_entries(summed_samples, summed_target)[any_observed]
    scale = np.abs(summed_target[any_observed]).sum()
    if scale == 0:
        raise ValueError("crps_sum: sum of |sum_d target| over observed steps is zero")
    return float(scores.sum() / scale)


def energy_score(samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean energy score of the ``D``-variate forecast at each window and step.

    ``ES(F, y) = E||X - y|| - 1/2 E||X - X'||`` (Euclidean norm over the ``D`` variables, ``X, X'``
    independent draws from the empirical sample distribution, all ``N^2`` pairs), averaged over
    ``(K, H)``. Unobserved variables are dropped from the vectors; steps with none observed are
    skipped. For ``D = 1`` the energy score is the CRPS of :func:`crps`.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    samples, target, mask = _prepare(samples, target, mask)
    k, n, h, d = samples.shape
    # Zeroing unobserved coordinates in both X and y removes them from every norm.
    points = np.where(mask[:, None], samples, 0.0).transpose(0, 2, 1, 3).reshape(k * h, n, d)
    observed = target.reshape(k * h, d)
    any_observed = mask.reshape(k * h, d).any(axis=-1)
    points, observed = points[any_observed], observed[any_observed]
    error = np.linalg.norm(points - observed[:, None], axis=-1).mean(axis=1)
    spread = np.zeros(len(points))
    rows = min(n, max(1, _PAIRWISE_BLOCK_ELEMENTS // (n * d)))
    steps = max(1, _PAIRWISE_BLOCK_ELEMENTS // (rows * n * d))
    for start in range(0, len(points), steps):
        chunk = points[start : start + steps]
        for row in range(0, n, rows):
            diff = chunk[:, row : row + rows, None] - chunk[:, None]
            spread[start : start + steps] += np.linalg.norm(diff, axis=-1).sum(axis=(1, 2))
    spread /= n * n
    return float(np.mean(error - 0.5 * spread))


def interval_coverage(
    samples: ArrayLike, target: ArrayLike, level: float, mask: ArrayLike | None = None
) -> float:
    """Fraction of observed targets inside the central ``level`` interval of the samples.

    The interval is ``[q_{(1 - level)/2}, q_{(1 + level)/2}]`` with sample quantiles from linear
    interpolation (numpy's default); endpoints count as inside. A calibrated forecast gives about
    ``level``.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        level: nominal coverage in ``(0, 1)``, e.g. 0.5 or 0.9.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    samples, target, mask = _prepare(samples, target, mask)
    lower, upper = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=1)
    inside = (lower <= target) & (target <= upper)
    return float(inside[mask].mean())


def seasonal_scale(
    history: ArrayLike, season: int, history_mask: ArrayLike | None = None
) -> np.ndarray:
    """In-sample mean absolute seasonal difference, the MASE denominator.

    ``scale(k, d) = mean_t |h(k, t, d) - h(k, t - m, d)|`` over ``t = m .. T-1`` with both values
    observed, ``m = season``.

    Args:
        history: training history ``(K, T, D)``.
        season: seasonal period ``m`` (1 for the non-seasonal naive scale).
        history_mask: optional boolean ``(K, T, D)``, ``True`` where observed (pads ragged
            histories).

    Returns:
        ``(K, D)`` scales; NaN where no pair of observed values is ``season`` steps apart.
    """
    history = _to_numpy(history, "history").astype(np.float64)
    if history.ndim != 3:
        raise ValueError(f"history must have shape (K, T, D), got {history.shape}")
    if not isinstance(season, (int, np.integer)) or not 1 <= season < history.shape[1]:
        raise ValueError(
            f"season must be an int in [1, T - 1 = {history.shape[1] - 1}], got {season}"
        )
    if history_mask is None:
        history_mask = np.ones(history.shape, dtype=bool)
    else:
        history_mask = _to_numpy(history_mask, "history_mask")
        if history_mask.dtype != bool or history_mask.shape != history.shape:
            raise ValueError(
                f"history_mask must be boolean with the history's shape {history.shape}, "
                f"got {history_mask.dtype} {history_mask.shape}"
            )
    if not np.isfinite(history[history_mask]).all():
        raise ValueError("history has NaN or infinite values at observed entries; mask them")
    pair = history_mask[:, season:] & history_mask[:, :-season]
    diffs = np.where(pair, np.abs(history[:, season:] - history[:, :-season]), 0.0)
    counts = pair.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, diffs.sum(axis=1) / counts, np.nan)


def seasonal_mase(
    samples: ArrayLike,
    target: ArrayLike,
    history: ArrayLike,
    season: int,
    mask: ArrayLike | None = None,
    history_mask: ArrayLike | None = None,
) -> float:
    """Mean absolute scaled error of the forecast median, seasonal naive scale.

    For each window ``k`` and variable ``d``:
    ``MASE(k, d) = mean_h |median_n X(k, n, h, d) - y(k, h, d)| / scale(k, d)`` over observed
    steps, with ``scale`` from :func:`seasonal_scale` on the training history; the result is the
    mean over ``(k, d)`` pairs with at least one observed step.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        history: training history ``(K, T, D)`` preceding each window.
        season: seasonal period ``m``.
        mask: optional boolean ``(K, H, D)``, ``True`` where the target is observed.
        history_mask: optional boolean ``(K, T, D)``, ``True`` where the history is observed.
    """
    samples, target, mask = _prepare(samples, target, mask)
    return _mase(np.median(samples, axis=1), target, mask, history, season, history_mask)


def point_mase(
    point: ArrayLike,
    target: ArrayLike,
    history: ArrayLike,
    season: int,
    mask: ArrayLike | None = None,
    history_mask: ArrayLike | None = None,
) -> float:
    """Mean absolute scaled error of a point forecast (the formula of :func:`seasonal_mase`).

    ``MASE(k, d) = mean_h |point(k, h, d) - y(k, h, d)| / scale(k, d)`` over observed steps,
    averaged over the ``(k, d)`` pairs with an observed step. With every window fully observed
    over the same ``H`` steps this is the mean of ``|error| / scale`` over all entries, the MASE
    of the fev benchmark (``fev.metrics.MASE``, which also uses the in-sample seasonal scale).

    Args:
        point: ``(K, H, D)`` point forecasts (e.g. a median).
        target: ``(K, H, D)``.
        history: training history ``(K, T, D)`` preceding each window.
        season: seasonal period ``m``.
        mask: optional boolean ``(K, H, D)``, ``True`` where the target is observed.
        history_mask: optional boolean ``(K, T, D)``, ``True`` where the history is observed.
    """
    point = _to_numpy(point, "point").astype(np.float64)
    if point.ndim != 3:
        raise ValueError(f"point must have shape (K, H, D), got {point.shape}")
    _, target, mask = _prepare(point[:, None], target, mask)
    return _mase(point, target, mask, history, season, history_mask)


def _mase(point: np.ndarray, target: np.ndarray, mask: np.ndarray, history: ArrayLike,
          season: int, history_mask: ArrayLike | None) -> float:
    scale = seasonal_scale(history, season, history_mask)
    if scale.shape != (point.shape[0], point.shape[2]):
        raise ValueError(
            f"history has {scale.shape[0]} windows and {scale.shape[1]} variables, samples "
            f"{point.shape[0]} and {point.shape[2]}"
        )
    has_target = mask.any(axis=1)
    bad = has_target & ~(scale > 0)
    if bad.any():
        k, d = np.argwhere(bad)[0]
        raise ValueError(
            f"seasonal scale is zero or undefined for window {k}, variable {d} "
            f"(constant or too short history); MASE is undefined there"
        )
    errors = np.where(mask, np.abs(point - target), 0.0)
    counts = mask.sum(axis=1)
    per_series = errors.sum(axis=1)[has_target] / counts[has_target] / scale[has_target]
    return float(per_series.mean())


def weighted_quantile_loss(
    quantiles: ArrayLike, target: ArrayLike, levels: Sequence[float],
    mask: ArrayLike | None = None,
) -> float:
    """Weighted quantile loss (WQL): twice the pinball loss summed over the entries and the
    ``Q`` levels, divided by ``Q`` times the sum of ``|y|`` over the entries.

    ``WQL = 2 sum_{k,h,d,q} rho_q(y, x_q) / (Q sum_{k,h,d} |y|)`` with the pinball loss
    ``rho_q(y, x) = (y - x) (q - 1{y < x})``, over observed entries. This is the WQL of the fev
    benchmark (``fev.metrics.WQL``: the mean of ``2 rho_q`` over entries and levels divided by
    the mean of ``|y|``) and GluonTS's ``mean_wQuantileLoss`` (the mean over levels of
    ``2 sum rho_q / sum |y|``). Over many evenly spaced levels it approximates
    :func:`normalized_crps`. A point forecast given at every level scores
    ``mean_q`` of ``2 q`` or ``2 (1 - q)`` times its absolute error, ``sum |y - x| / sum |y|``
    for levels symmetric about 0.5.

    Args:
        quantiles: ``(K, Q, H, D)`` forecasts at each level.
        target: ``(K, H, D)``.
        levels: the ``Q`` levels in ``(0, 1)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
    """
    levels = np.asarray(levels, dtype=np.float64).reshape(-1)
    if len(levels) == 0 or not ((levels > 0) & (levels < 1)).all():
        raise ValueError(f"levels must be quantile levels in (0, 1), got {levels.tolist()}")
    quantiles, target, mask = _prepare(quantiles, target, mask)
    if quantiles.shape[1] != len(levels):
        raise ValueError(f"quantiles have {quantiles.shape[1]} levels (axis 1), levels "
                         f"{len(levels)}")
    error = target[:, None] - quantiles
    below = (error < 0).astype(np.float64)
    pinball = error * (levels[None, :, None, None] - below)
    scale = np.abs(target[mask]).sum()
    if scale == 0:
        raise ValueError("weighted_quantile_loss: sum of |target| over observed entries is zero")
    return float(2.0 * pinball.sum(axis=1)[mask].sum() / (len(levels) * scale))


@dataclass(frozen=True)
class ForecastMetrics:
    """Summary of :func:`forecast_metrics`; ``None`` where the metric was not requested.

    ``variable_averaged_crps`` is the headline (:func:`variable_averaged_crps`), with
    ``crps_per_variable`` ``(D,)`` behind it and ``crps_sum``, ``energy_score`` beside it;
    ``mean_crps`` and ``normalized_crps`` are pooled over variables (mixed units when
    ``D > 1``).
    """

    mean_crps: float
    normalized_crps: float
    coverage_50: float
    coverage_90: float
    crps_sum: float
    energy_score: float
    mase: float | None
    variable_averaged_crps: float
    crps_per_variable: tuple[float, ...]


def forecast_metrics(
    samples: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
    history: ArrayLike | None = None,
    season: int | None = None,
    history_mask: ArrayLike | None = None,
) -> ForecastMetrics:
    """All metrics of this module at once; MASE only when ``history`` and ``season`` are given.

    Args:
        samples: ``(K, N, H, D)``.
        target: ``(K, H, D)``.
        mask: optional boolean ``(K, H, D)``, ``True`` where observed.
        history: optional training history ``(K, T, D)`` for MASE.
        season: seasonal period for MASE.
        history_mask: optional boolean ``(K, T, D)`` for the history.
    """
    if (history is None) != (season is None):
        raise ValueError("history and season must be given together for MASE")
    mase = (
        None
        if history is None
        else seasonal_mase(samples, target, history, season, mask, history_mask)
    )
    per_variable = crps_per_variable(samples, target, mask)
    return ForecastMetrics(
        mean_crps=mean_crps(samples, target, mask),
        normalized_crps=normalized_crps(samples, target, mask),
        coverage_50=interval_coverage(samples, target, 0.5, mask),
        coverage_90=interval_coverage(samples, target, 0.9, mask),
        crps_sum=crps_sum(samples, target, mask),
        energy_score=energy_score(samples, target, mask),
        mase=mase,
        variable_averaged_crps=float(per_variable.mean()),
        crps_per_variable=tuple(float(v) for v in per_variable),
    )
