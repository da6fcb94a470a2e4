"""Classical baselines for the speech teacher, fitted on a run's training files only.

Every model is scored like the teacher (:mod:`seqflow.speech.evaluate`): whole held-out
utterances from the run's file split, 16-bit audio on ``[-1, 1)`` with the same uniform
dequantization, log-likelihood in nats per sample (total over total samples), and bits per
16-bit sample ``15 - LL / ln 2``.

* ``iid-gaussian``: every sample ``N(mu, sigma^2)``, the training mean and variance.
* ``lpc-P`` (P in 2, 16, 32): global linear prediction ``x_t = sum_k a_k x_{t-k} + e_t``,
  ``e_t ~ N(0, sigma^2)``. ``a`` is the least-squares solution over all training samples
  with zeros before each file's start (the covariance method; the exact conditional maximum
  likelihood), ``sigma^2`` the mean squared training residual. Samples before a file's start
  are taken as zero when scoring too, so every sample of an utterance is scored.
* ``adaptive-lpc-P``: the same predictor, with a residual scale that follows the loudness of
  each frame of ``hop_length`` samples: ``log sigma_t = alpha + beta * log(rms_f + 2^-15)``
  with ``rms_f`` the RMS of the frame's samples (what a mel-conditioned model reads from its
  context). ``(alpha, beta)`` maximize the training likelihood (Newton's method on a convex
  objective).

Usage::

    python recipes/speech/baselines.py runs/teacher_cpu [--teacher] [--data DIR]

writes ``RUN/baselines_<split or data>.json`` and prints a Markdown table (with the teacher's
row when ``--teacher`` is given).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from seqflow.speech import evaluate_audio_run, score_utterances, summarize
from seqflow.train import load_config, utterances

LOG_2PI = math.log(2.0 * math.pi)
RMS_FLOOR = 2.0**-15  # one quantization step: keeps log(rms) finite on digital silence
ORDERS = (2, 16, 32)


def gaussian_log_prob(e: np.ndarray, log_sigma: np.ndarray | float) -> float:
    """``sum_t log N(e_t; 0, exp(log_sigma_t)^2)`` in nats (``log_sigma`` broadcasts)."""
    log_sigma = np.broadcast_to(np.asarray(log_sigma, dtype=np.float64), e.shape)
    return float(np.sum(-0.5 * LOG_2PI - log_sigma - 0.5 * (e * np.exp(-log_sigma)) ** 2))


def lag_matrix(x: np.ndarray, order: int) -> np.ndarray:
    """``(T, order)`` view with column ``k`` = ``x[t - 1 - k]`` (zero before the start)."""
    padded = np.concatenate([np.zeros(order), x[:-1]]) if len(x) else np.zeros(order)
    return sliding_window_view(padded, order)[:, ::-1]


def normal_equations(signals: Iterable[np.ndarray], order: int,
                     chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, int]:
    """``(X^T X, X^T y, rows)`` of the least-squares LPC problem over all ``signals``.

    Rows are every sample ``t`` of every signal, ``y = x[t]``, ``X[t] = lag_matrix(x)[t]``;
    sums run over chunks of ``chunk`` rows in float64.
    """
    gram, cross, rows = np.zeros((order, order)), np.zeros(order), 0
    for x in signals:
        lags = lag_matrix(x, order)
        for a in range(0, len(x), chunk):
            block = lags[a:a + chunk]
            gram += block.T @ block
            cross += block.T @ x[a:a + chunk]
        rows += len(x)
    return gram, cross, rows


def lpc_residual(x: np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """``e_t = x_t - sum_k coefs[k] * x[t - 1 - k]`` with zeros before the start."""
    prediction = np.convolve(x, np.concatenate([[0.0], coefs]))[: len(x)]
    return x - prediction


def frame_log_rms(x: np.ndarray, hop_length: int) -> np.ndarray:
    """``log(rms_f + 2^-15)`` of each frame of ``hop_length`` samples, repeated per sample ``(T,)``
    (a last partial frame uses its own samples)."""
    frames = -(-len(x) // hop_length)
    padded = np.zeros(frames * hop_length)
    padded[: len(x)] = x
    counts = np.full(frames, float(hop_length))
    counts[-1] = len(x) - (frames - 1) * hop_length
    rms = np.sqrt((padded.reshape(frames, hop_length) ** 2).sum(axis=1) / counts)
    return np.repeat(np.log(rms + RMS_FLOOR), hop_length)[: len(x)]


@dataclass
class IIDGaussian:
    mean: float
    log_sigma: float
    name: str = "iid-gaussian"

    @classmethod
    def fit(cls, signals: list[np.ndarray]) -> IIDGaussian:
        n = sum(len(x) for x in signals)
        mean = math.fsum(float(x.sum()) for x in signals) / n
        var = math.fsum(float(((x - mean) ** 2).sum()) for x in signals) / n
        return cls(mean, 0.5 * math.log(var))

    def log_prob(self, x: np.ndarray) -> float:
        return gaussian_log_prob(x - self.mean, self.log_sigma)


@dataclass
class LPC:
    coefs: np.ndarray
    log_sigma: float

    @property
    def name(self) -> str:
        return f"lpc-{len(self.coefs)}"

    @classmethod
    def fit(cls, signals: list[np.ndarray], order: int) -> LPC:
        gram, cross, rows = normal_equations(signals, order)
        coefs = np.linalg.solve(gram, cross)
        sse = math.fsum(float((lpc_residual(x, coefs) ** 2).sum()) for x in signals)
        return cls(coefs, 0.5 * math.log(sse / rows))

    def log_prob(self, x: np.ndarray) -> float:
        return gaussian_log_prob(lpc_residual(x, self.coefs), self.log_sigma)


@dataclass
class AdaptiveLPC:
    coefs: np.ndarray
    alpha: float
    beta: float
    hop_length: int

    @property
    def name(self) -> str:
        return f"adaptive-lpc-{len(self.coefs)}"

    @classmethod
    def fit(cls, signals: list[np.ndarray], lpc: LPC, hop_length: int,
            iterations: int = 100) -> AdaptiveLPC:
        """Newton's method on ``sum_t [alpha + beta u_t + e_t^2 exp(-2 (alpha + beta u_t)) / 2]``
        (convex in ``(alpha, beta)``), from ``beta = 0`` and the global scale."""
        u = np.concatenate([frame_log_rms(x, hop_length) for x in signals])
        e2 = np.concatenate([lpc_residual(x, lpc.coefs) ** 2 for x in signals])
        theta = np.array([lpc.log_sigma, 0.0])
        design = np.stack([np.ones_like(u), u], axis=1)
        for _ in range(iterations):
            w = e2 * np.exp(-2.0 * design @ theta)  # e^2 / sigma^2
            grad = design.sum(axis=0) - design.T @ w
            hess = 2.0 * (design * w[:, None]).T @ design
            step = np.linalg.solve(hess, grad)
            theta = theta - step
            if np.abs(step).max() < 1e-10:
                break
        return cls(lpc.coefs, float(theta[0]), float(theta[1]), hop_length)

    def log_prob(self, x: np.ndarray) -> float:
        log_sigma = self.alpha + self.beta * frame_log_rms(x, self.hop_length)
        return gaussian_log_prob(lpc_residual(x, self.coefs), log_sigma)


def fit_all(signals: list[np.ndarray], hop_length: int) -> list:
    """The i.i.d. Gaussian, LPC(p) for p in ``ORDERS`` and the adaptive LPC of each order."""
    models: list = [IIDGaussian.fit(signals)]
    for order in ORDERS:
        lpc = LPC.fit(signals, order)
        models += [lpc, AdaptiveLPC.fit(signals, lpc, hop_length)]
    return models


def _signal(item: dict) -> np.ndarray:
    return item["x"][0].double().numpy()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a speech run directory (its config and file split)")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--data", default=None, help="score every audio file of this folder")
    parser.add_argument("--teacher", action="store_true", help="also score the run's teacher")
    parser.add_argument("--weights", default="auto", choices=["auto", "best", "final", "last"])
    args = parser.parse_args(argv)
    run = Path(args.run)
    cfg = load_config(run / "config.yaml")

    start = time.perf_counter()
    train = utterances(cfg, run, "train")
    signals = [_signal(train[i]) for i in range(len(train))]
    models = fit_all(signals, cfg.data.mel.hop_length)
    fit_seconds = time.perf_counter() - start
    print(f"fitted {len(models)} baselines on {len(signals)} training files "
          f"({sum(map(len, signals)) / cfg.data.mel.sample_rate / 60:.2f} min) in "
          f"{fit_seconds:.1f} s")

    held_out = utterances(cfg, run, args.split, args.data)
    rows = []
    for model in models:
        files = score_utterances(lambda x, mel, m=model: m.log_prob(x[0, 0].double().numpy()),
                                 held_out, progress=False, desc=model.name)
        rows.append({"model": model.name, **summarize(files, cfg.data.dequantize),
                     "files": files})
    if args.teacher:
        teacher = evaluate_audio_run(run, args.split, args.weights, args.data)
        rows.append({"model": f"teacher (step {teacher['step']}, {teacher['weights']})",
                     **{k: v for k, v in teacher.items()
                        if k not in ("split", "data", "weights", "step", "seconds")}})
    name = args.split if args.data is None else "data_" + Path(args.data).resolve().name
    parameters = {m.name: {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                           for k, v in vars(m).items()} for m in models}
    (run / f"baselines_{name}.json").write_text(json.dumps(
        {"split": name, "fit_seconds": fit_seconds, "parameters": parameters, "rows": rows},
        indent=1))
    print(f"\n{rows[0]['units']}\n")
    print("| model | test LL (nats/sample) | bits per 16-bit sample | file-mean LL |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['nats_per_sample']:.4f} | "
              f"{row['bits_per_16bit_sample']:.3f} | {row['file_mean_nats_per_sample']:.4f} |")
    print(f"\n{rows[0]['utterances']} utterances, {rows[0]['minutes']:.2f} min; wrote "
          f"{run / f'baselines_{name}.json'}")
    return rows


if __name__ == "__main__":
    main()
