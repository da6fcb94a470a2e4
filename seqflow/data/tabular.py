"""Tabular density-estimation data: scikit-learn's digits, and the MAF paper's UCI sets from disk.

Nothing here downloads anything. :func:`load_digits_split` uses the 8x8 digits that ship inside
scikit-learn. :func:`load_uci` reads the files of the MAF paper's benchmark (POWER, GAS, HEPMASS,
MINIBOONE, BSDS300) from a directory the user provides and applies that paper's preprocessing;
when files are missing the error names every expected path.

Every loader returns a :class:`TabularSplit` of float32 tensors ``(rows, features)``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


@dataclass
class TabularSplit:
    """Train/validation/test rows ``(rows, features)`` and a note on the preprocessing."""

    train: Tensor
    val: Tensor
    test: Tensor
    description: str

    @property
    def features(self) -> int:
        return self.train.shape[1]


# --- scikit-learn digits -----------------------------------------------------------------
DIGITS_LEVELS = 17  # pixel intensities are integers 0..16
DIGITS_ALPHA = 0.05  # logit margin, as RealNVP uses for images


def dequantize_logit(pixels: Tensor, noise: Tensor, levels: int, alpha: float) -> Tensor:
    """``y = logit(alpha + (1 - 2 alpha) v)`` with ``v = (pixels + noise) / levels`` in ``(0, 1)``.

    ``pixels`` are integers ``0..levels-1`` and ``noise`` is uniform on ``[0, 1)``; both
    ``(rows, features)``.

    >>> import torch
    >>> dequantize_logit(torch.tensor([[0.0, 16.0]]), torch.full((1, 2), 0.5), 17, 0.05)
    tensor([[-2.4913,  2.4913]])
    """
    v = (pixels + noise) / levels
    s = alpha + (1 - 2 * alpha) * v
    return torch.log(s) - torch.log1p(-s)


def logit_log_det(y: Tensor, levels: int, alpha: float) -> Tensor:
    """``log|dy/dv|`` summed over features, ``(rows, features) -> (rows,)``.

    Adding it to a log-density of ``y`` gives the log-density of the dequantized ``v`` in
    ``(0, 1)^D`` (subtract ``D log(levels)`` more for the ``[0, levels)`` pixel scale).
    """
    s = torch.sigmoid(y)
    return (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).sum(dim=1)


def load_digits_split(
    seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> TabularSplit:
    """The 1,797 scikit-learn digits as 64-D continuous data, split by rows.

    Preprocessing: uniform dequantization ``v = (pixel + u) / 17`` with ``u ~ U[0, 1)``, then
    ``y = logit(0.05 + 0.9 v)``. Rows are shuffled with ``seed`` and split into train /
    validation / test (70 / 15 / 15 % by default). The dequantization noise is drawn once with
    ``seed``, so a split is reproducible; log-likelihoods are in the logit space ``y``.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    pixels = torch.as_tensor(load_digits().data, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(pixels.shape, generator=generator, dtype=torch.float64)
    y = dequantize_logit(pixels, noise, DIGITS_LEVELS, DIGITS_ALPHA).float()
    perm = torch.randperm(len(y), generator=generator)
    n_test = int(round(test_fraction * len(y)))
    n_val = int(round(val_fraction * len(y)))
    test, val, train = y[perm[:n_test]], y[perm[n_test:n_test + n_val]], y[perm[n_test + n_val:]]
    description = (
        f"sklearn digits (8x8, 17 levels), {len(train)}/{len(val)}/{len(test)} rows "
        f"train/val/test (shuffle seed {seed}); dequantized v=(pixel+U[0,1))/17, "
        f"y=logit({DIGITS_ALPHA}+{1 - 2 * DIGITS_ALPHA:.1f}v); log-likelihood in y space"
    )
    return TabularSplit(train, val, test, description)


# --- the MAF paper's UCI sets ------------------------------------------------------------
UCI_FILES: dict[str, list[str]] = {
    "power": ["power/data.npy"],
    "gas": ["gas/ethylene_CO.pickle"],
    "hepmass": ["hepmass/1000_train.csv", "hepmass/1000_test.csv"],
    "miniboone": ["miniboone/data.npy"],
    "bsds300": ["BSDS300/BSDS300.hdf5"],
}


def load_uci(name: str, root: str | Path) -> TabularSplit:
    """Load one of the MAF paper's UCI sets from ``root`` (never downloaded).

    ``root`` is the directory holding the paper's ``data/`` layout, e.g. ``root/power/data.npy``
    (see :data:`UCI_FILES`). The preprocessing follows Papamakarios et al. (2017):

    * POWER: drop the global reactive power and intensity columns, add uniform jitter to the
      quantized columns, 10 % test / 10 % of the rest validation, standardize with train+val.
    * GAS: ``ethylene_CO`` without Meth/Eth/Time, greedily drop columns correlated > 0.98,
      standardize, same split.
    * HEPMASS: signal rows (label 1) only, standardize with the train mean/std, drop features
      with a value repeated more than 5 times (heavy point masses), last 10 % of train is
      validation.
    * MINIBOONE: same split as POWER, standardize with train+val.
    * BSDS300: the given train/validation/test arrays (63-D patches), unchanged.

    GAS needs ``pandas`` and BSDS300 ``h5py``; both are imported only when used.
    """
    key = name.lower()
    if key not in UCI_FILES:
        raise ValueError(f"unknown UCI set {name!r}; choose one of {sorted(UCI_FILES)}")
    root = Path(root)
    paths = [root / rel for rel in UCI_FILES[key]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"load_uci({name!r}): missing {', '.join(missing)}. seqflow never downloads data; put "
            f"the MAF paper's files under {root} as {', '.join(UCI_FILES[key])}"
        )
    rng = np.random.RandomState(42)
    train, val, test = _UCI_LOADERS[key](paths, rng)
    as_tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    return TabularSplit(
        as_tensor(train), as_tensor(val), as_tensor(test),
        f"UCI {key.upper()} from {root}, MAF-paper preprocessing",
    )


def _split_10_10(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_test = int(0.1 * data.shape[0])
    test, rest = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * rest.shape[0])
    return rest[:-n_val], rest[-n_val:], test


def _standardize_by(reference: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    mu, sd = reference.mean(axis=0), reference.std(axis=0)
    return [(a - mu) / sd for a in arrays]


def _power(paths, rng):
    data = np.load(paths[0])
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, [1, 3], axis=1)  # global reactive power and global intensity
    # Columns now: active power, voltage, three sub-meterings, time. Jitter the quantized ones
    # by their resolution so the density is continuous.
    noise = np.hstack([
        0.001 * rng.rand(n, 1), 0.01 * rng.rand(n, 1), rng.rand(n, 3), np.zeros((n, 1))
    ])
    data = data + noise[:, : data.shape[1]]
    train, val, test = _split_10_10(data)
    both = np.vstack([train, val])
    return _standardize_by(both, train, val, test)


def _gas(paths, rng):
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("load_uci('gas') reads a pandas pickle: pip install pandas") from err
    frame = pd.read_pickle(paths[0]).drop(columns=["Meth", "Eth", "Time"])
    while True:
        corr = frame.corr().to_numpy() > 0.98
        counts = corr.sum(axis=1)
        if counts.max() <= 1:
            break
        frame = frame.drop(columns=frame.columns[int(np.argmax(counts > 1))])
    data = frame.to_numpy()
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    return _split_10_10(data)


def _hepmass(paths, rng):
    def read(path: Path) -> np.ndarray:
        raw = np.loadtxt(path, delimiter=",", skiprows=1)
        return raw[raw[:, 0] == 1][:, 1:]  # signal rows, label column dropped

    train, test = read(paths[0]), read(paths[1])
    # The paper drops the feature holding the test file's extra trailing column, if any.
    test = test[:, : train.shape[1]]
    train, test = _standardize_by(train, train, test)
    keep = [j for j in range(train.shape[1]) if Counter(train[:, j]).most_common(1)[0][1] <= 5]
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * train.shape[0])
    return train[:-n_val], train[-n_val:], test


def _miniboone(paths, rng):
    data = np.load(paths[0])
    train, val, test = _split_10_10(data)
    both = np.vstack([train, val])
    return _standardize_by(both, train, val, test)


def _bsds300(paths, rng):
    try:
        import h5py
    except ImportError as err:
        raise ImportError("load_uci('bsds300') reads HDF5: pip install h5py") from err
    with h5py.File(paths[0], "r") as f:
        return np.asarray(f["train"]), np.asarray(f["validation"]), np.asarray(f["test"])


_UCI_LOADERS = {
    "power": _power,
    "gas": _gas,
    "hepmass": _hepmass,
    "miniboone": _miniboone,
    "bsds300": _bsds300,
}
