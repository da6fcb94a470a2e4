"""The untrained floor of the linear-prediction flow: mel-derived LPC, no trained weights.

Every held-out utterance of the run's split (whole files, 16-bit audio on ``[-1, 1)`` with the
run's dequantization, as :mod:`seqflow.speech.evaluate` scores the teacher) is filtered by the
per-sample predictor that :class:`seqflow.data.linear_prediction.MelLinearPrediction` derives
from its log-mel, ``e_t = x_t - sum_k a_{k,t} x_{t-k}`` (zeros before the start), and ``e_t``
is scored with the frame's prediction-error standard deviation ``g_t`` as its scale:

* ``gaussian``: ``e_t ~ N(0, g_t^2)`` (what a LinearPrediction layer under a network whose
  output starts at zero scores at step 0);
* ``laplace``: ``e_t ~ Laplace(0, g_t / sqrt(2))`` (the same variance).

Also reported per row: ``calibration = mean_t (e_t / g_t)^2`` (1 if the mel-derived gain had
the residual's power) and the log-likelihood with the one best global factor on ``g``
(``gaussian_calibrated``, a bound on what a constant gain correction gains). Orders, the
interpolation and the mel inversion are swept (``--orders``, ``--interpolations``,
``--methods``).

Usage::

    python recipes/speech/lpc_floor.py [--config recipes/speech/configs/teacher_cpu.yaml]
        [--data data/speech/asterisk] [--run RUN] [--split test] [--out lpc_floor.json]

``--run`` reads an existing run's file split; without it the split is drawn from the config
(``data.seed``, fractions) as a new run would draw it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from seqflow.data.linear_prediction import LinearPredictionConfig, MelLinearPrediction
from seqflow.train import load_config, provenance, utterances

LOG_2PI = math.log(2 * math.pi)
HERE = Path(__file__).resolve().parent


def residual(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``e_t = x_t - sum_k a[k-1, t] x_{t-k}`` for ``x`` ``(T,)`` and ``a`` ``(p, T)``."""
    e = x.clone()
    for k in range(1, a.shape[0] + 1):
        e[k:] -= a[k - 1, k:] * x[:-k]
    return e


def score_file(x: torch.Tensor, log_mel: torch.Tensor, lp: MelLinearPrediction) -> dict:
    _, k, log_error = lp(log_mel[None])
    a, log_gain = lp.per_sample(k, log_error)
    u = residual(x, a[0]) * torch.exp(-log_gain[0])
    return {"samples": x.numel(),
            "sum_log_gain": float(log_gain.sum()),
            "sum_u2": float(u.square().sum()),
            "sum_abs_u": float(u.abs().sum())}


def totals(records: list[dict]) -> dict:
    n = sum(r["samples"] for r in records)
    log_gain = math.fsum(r["sum_log_gain"] for r in records) / n
    u2 = math.fsum(r["sum_u2"] for r in records) / n
    abs_u = math.fsum(r["sum_abs_u"] for r in records) / n
    gaussian = -0.5 * LOG_2PI - log_gain - 0.5 * u2
    laplace = -math.log(math.sqrt(2)) - log_gain - math.sqrt(2) * abs_u
    # best global factor c on g: log c = 0.5 log(u2)
    calibrated = -0.5 * LOG_2PI - log_gain - 0.5 * math.log(u2) - 0.5
    return {"gaussian": gaussian, "laplace": laplace, "calibration": u2,
            "gaussian_calibrated": calibrated}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "configs" / "teacher_cpu.yaml"))
    parser.add_argument("--data", default=None, help="corpus folder (overrides data.path)")
    parser.add_argument("--run", default=None, help="an existing run: use its file split")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--orders", default="8,16,24")
    parser.add_argument("--interpolations", default="gain,hold,reflection")
    parser.add_argument("--methods", default="nnls,pinv")
    parser.add_argument("--out", default="lpc_floor.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    source = provenance(["python", "recipes/speech/lpc_floor.py",
                         *(sys.argv[1:] if argv is None else argv)], Path.cwd())
    overrides = [] if args.data is None else [f"data.path={args.data}"]
    if args.run is not None:
        cfg = load_config(Path(args.run) / "config.yaml", overrides)
    else:
        cfg = load_config(args.config, overrides)
    with tempfile.TemporaryDirectory() as scratch:
        held_out = utterances(cfg, args.run or scratch, args.split)
        items = [held_out[i] for i in range(len(held_out))]
    rows = []
    for method in args.methods.split(","):
        for order in (int(p) for p in args.orders.split(",")):
            for interpolation in args.interpolations.split(","):
                lp = MelLinearPrediction(cfg.data.mel, LinearPredictionConfig(
                    order=order, interpolation=interpolation, method=method))
                start = time.perf_counter()
                records = [score_file(item["x"][0].double(), item["context"], lp)
                           for item in items]
                row = {"method": method, "order": order, "interpolation": interpolation,
                       **totals(records), "seconds": time.perf_counter() - start}
                rows.append(row)
                print(f"{method:5s} p={order:2d} {interpolation:10s} gaussian "
                      f"{row['gaussian']:.4f} laplace {row['laplace']:.4f} calibration "
                      f"{row['calibration']:.3f} ({row['seconds']:.1f} s)", flush=True)
    samples = sum(item["x"].numel() for item in items)
    result = {"split": args.split, "utterances": len(items), "samples": samples,
              "units": "nats per sample, dequantized 16-bit audio on [-1, 1)",
              "mel": cfg.data.mel.to_dict(), "dequantize": cfg.data.dequantize,
              "defaults": vars(LinearPredictionConfig()), "rows": rows, **source}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{len(items)} utterances, {samples} samples; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
