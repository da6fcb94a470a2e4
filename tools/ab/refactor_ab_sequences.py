"""Median milliseconds of sequence MAF/IAF calls (WaveNet R=32, 10 blocks, batch 1, one thread),
for A/B runs of two trees (reads ``blocks=`` or the older ``layers=`` argument name)."""

import statistics
import time

import torch

import seqflow
from seqflow import Flow, SequenceIAF, SequenceMAF, StandardNormal


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    torch.set_num_threads(1)
    depth = {"blocks": 10} if hasattr(seqflow, "SequenceContext") else {"layers": 10}
    size = dict(residual_channels=32, skip_channels=32, **depth)
    torch.manual_seed(0)
    maf = Flow(SequenceMAF(1, **size), StandardNormal(1))
    iaf = Flow(SequenceIAF(1, **size), StandardNormal(1))
    with torch.no_grad():
        for flow in (maf, iaf):
            for p in flow.parameters():
                p.add_(0.05 * torch.randn_like(p))
    maf.eval()
    iaf.eval()
    x4, z1 = torch.randn(1, 1, 4096) * 0.1, torch.randn(1, 1, 1024)
    x1 = torch.randn(1, 1, 1024) * 0.1
    with torch.no_grad():
        out = {"maf_log_prob_T4096": median_ms(lambda: maf.log_prob(x4, validate=False), 15),
               "iaf_sample_T4096": median_ms(lambda: iaf.transform.inverse(x4), 15),
               "maf_stream_T1024": median_ms(lambda: maf.transform.inverse(z1), 3),
               "iaf_stream_T1024": median_ms(lambda: iaf.transform(x1), 3)}
    print(" ".join(f"{k}={v:.2f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
