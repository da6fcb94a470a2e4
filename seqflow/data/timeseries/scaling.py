"""Scaling of a series per variable: the affine :class:`Scale` and the three ways to fit it.

Reference for the mean scaling: Salinas, Flunkert, Gasthaus, Januschowski, "DeepAR: Probabilistic
forecasting with autoregressive recurrent networks", International Journal of Forecasting 36
(2020), section 3.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SCALINGS = ("mean", "standard", "window")


@dataclass(frozen=True)
class Scale:
    """Affine map ``y = (x - loc) / scale`` per variable; ``loc`` and ``scale`` are ``(D,)``."""

    loc: np.ndarray
    scale: np.ndarray

    def _shaped(self, x, var_axis: int):
        shape = [1] * x.ndim
        shape[var_axis] = -1
        loc, scale = self.loc.reshape(shape), self.scale.reshape(shape)
        if isinstance(x, torch.Tensor):
            loc = torch.as_tensor(loc, dtype=x.dtype, device=x.device)
            scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
        return loc, scale

    def apply(self, x, var_axis: int = 0):
        """Scaled ``(x - loc) / scale`` for a numpy array or tensor with variables on
        ``var_axis`` (``(D, time)`` by default; ``var_axis=-1`` for ``(..., time, D)``)."""
        loc, scale = self._shaped(x, var_axis)
        return (x - loc) / scale

    def invert(self, y, var_axis: int = 0):
        """Original units ``y * scale + loc`` (same layout rules as :meth:`apply`)."""
        loc, scale = self._shaped(y, var_axis)
        return y * scale + loc


def mean_abs_scale(context_values: np.ndarray, context_observed: np.ndarray) -> Scale:
    """DeepAR's scale from a window's context part ``(D, context)``.

    ``scale_d = 1 + (1 / n_d) * sum |x_{d,t}|`` over the ``n_d`` observed context steps
    (``scale_d = 1`` when ``n_d = 0``); ``loc = 0``.

    >>> x = np.array([[1.0, -3.0, np.nan]])
    >>> mean_abs_scale(x, ~np.isnan(x)).scale.tolist()
    [3.0]
    """
    count = context_observed.sum(axis=1)
    total = np.where(context_observed, np.abs(np.nan_to_num(context_values)), 0.0).sum(axis=1)
    scale = 1.0 + total / np.maximum(count, 1)
    return Scale(loc=np.zeros_like(scale), scale=scale.astype(np.float64))


def window_scale(
    context_values: np.ndarray, context_observed: np.ndarray, floor: float = 1e-3
) -> Scale:
    """Standardization by a window's context part ``(D, context)``.

    ``loc_d`` is the mean and ``s_d`` the population standard deviation of the ``n_d``
    observed context steps; ``scale_d = max(s_d, floor * (1 + mean |x_d|))`` so that a flat
    context does not blow up the window (``loc = 0``, ``scale = 1`` when ``n_d = 0``). Unlike
    :func:`mean_abs_scale` it removes the level, which keeps the steps of a series with a
    trend or a large offset (CO2 in ppm, prices) at a scale of order one.

    >>> x = np.array([[1.0, 3.0, np.nan], [5.0, 5.0, 5.0]])
    >>> s = window_scale(x, ~np.isnan(x))
    >>> s.loc.tolist(), s.scale.tolist()
    ([2.0, 5.0], [1.0, 0.006])
    """
    seen = context_observed
    count = seen.sum(axis=1)
    values = np.where(seen, np.nan_to_num(context_values).astype(np.float64), 0.0)
    mean = values.sum(axis=1) / np.maximum(count, 1)
    var = np.where(seen, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(count, 1)
    mean_abs = np.abs(values).sum(axis=1) / np.maximum(count, 1)
    scale = np.maximum(np.sqrt(var), floor * (1.0 + mean_abs))
    empty = count == 0
    return Scale(loc=np.where(empty, 0.0, mean), scale=np.where(empty, 1.0, scale))


def standard_scale(values: np.ndarray, observed: np.ndarray, train_end: int) -> Scale:
    """Per-variable mean and population standard deviation of the observed entries of
    ``values[:train_end]`` ``(T, D)``; a zero deviation is replaced by 1."""
    part, seen = values[:train_end].astype(np.float64), observed[:train_end]
    count = seen.sum(axis=0)
    if (count == 0).any():
        d = int(np.flatnonzero(count == 0)[0])
        raise ValueError(f"variable {d} has no observed value before step {train_end}")
    mean = np.where(seen, part, 0.0).sum(axis=0) / count
    var = np.where(seen, (part - mean) ** 2, 0.0).sum(axis=0) / count
    std = np.sqrt(var)
    std = np.where(std <= 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0, std)
    return Scale(loc=mean, scale=std)
