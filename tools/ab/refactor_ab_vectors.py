"""Median milliseconds of MAF/IAF vector calls (batch 256, one thread), for A/B runs of two trees.

Run it with each tree's ``seqflow`` on ``PYTHONPATH``, alternating, and compare medians.
"""

import statistics
import time

import torch

from seqflow import IAF, MAF, Flow, StandardNormal


def build(cls, features: int, seed: int) -> Flow:
    torch.manual_seed(seed)
    layer = cls(features)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, 0.02)
    return Flow(layer, StandardNormal(features)).eval()


def median_ms(fn, repeats: int = 25) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    torch.set_num_threads(1)
    out = {}
    for features in (16, 64):
        maf, iaf = build(MAF, features, 0), build(IAF, features, 1)
        x = torch.randn(256, features)
        with torch.no_grad():
            out[f"maf_sample_D{features}"] = median_ms(lambda: maf.sample(256))  # noqa: B023
            out[f"iaf_log_prob_D{features}"] = median_ms(
                lambda: iaf.log_prob(x, validate=False))  # noqa: B023
            out[f"maf_log_prob_D{features}"] = median_ms(
                lambda: maf.log_prob(x, validate=False))  # noqa: B023
    print(" ".join(f"{k}={v:.3f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
