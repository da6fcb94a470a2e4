"""Benchmarks of the MAF/IAF trade-off.

    python tools/bench.py vectors [--dims 8 64 256] [--batch 1024] [--json out.json]
    python tools/bench.py sequences ...   # tools/bench_sequences.py (sequence flows)
    python tools/bench.py all

``vectors`` times one MAF layer and one IAF layer (MADE conditioner, two hidden layers of width
``max(64, 2 D)``) inside a :class:`seqflow.Flow` with a standard normal base: MAF log_prob (one
pass), MAF sample (degree-sliced stream), IAF sample (one pass), IAF log_prob (stream), IAF
sample_and_log_prob (one pass), and MAF sample on the naive D-pass path for reference. It checks
that streamed and naive samples agree and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from seqflow.distributions import Flow, StandardNormal
from seqflow.transforms.maf import IAF, MAF


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device):
    """Median wall-clock of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_flow(cls, features: int, device: torch.device, seed: int) -> Flow:
    torch.manual_seed(seed)
    layer = cls(features)
    with torch.no_grad():  # leave the identity initialization: a generic trained-like layer
        for p in layer.parameters():
            p.normal_(0.0, 0.02)
    return Flow(layer, StandardNormal(features)).to(device).eval()


def bench_vectors(dims: list[int], batch: int, repeats: int, device: torch.device,
                  naive_max_dim: int) -> list[dict]:
    rows = []
    for features in dims:
        maf = build_flow(MAF, features, device, seed=0)
        iaf = build_flow(IAF, features, device, seed=1)
        x = torch.randn(batch, features, device=device)
        params = sum(p.numel() for p in maf.parameters())
        with torch.no_grad():
            ops = {
                "maf_log_prob": lambda: maf.log_prob(x, validate=False),  # noqa: B023
                "maf_sample": lambda: maf.sample(batch),  # noqa: B023
                "iaf_sample": lambda: iaf.sample(batch),  # noqa: B023
                "iaf_log_prob": lambda: iaf.log_prob(x, validate=False),  # noqa: B023
                "iaf_sample_and_log_prob": lambda: iaf.sample_and_log_prob(batch),  # noqa: B023
            }
            row = {"features": features, "batch": batch, "params_per_flow": params}
            for name, fn in ops.items():
                row[name + "_s"] = median_seconds(fn, repeats, warmup=2, device=device)
            z = torch.randn(batch, features, device=device)
            fast = maf.transform.inverse(z)[0]
            naive = maf.transform.naive_sequential(z)[0]
            row["max_abs_diff_stream_vs_naive"] = float((fast - naive).abs().max())
            if features <= naive_max_dim:
                row["maf_sample_naive_s"] = median_seconds(
                    lambda: maf.transform.naive_sequential(z), max(1, repeats // 3),  # noqa: B023
                    warmup=1, device=device,
                )
        row["maf_sample_over_log_prob"] = row["maf_sample_s"] / row["maf_log_prob_s"]
        row["iaf_log_prob_over_sample"] = row["iaf_log_prob_s"] / row["iaf_sample_s"]
        if "maf_sample_naive_s" in row:
            row["naive_over_stream"] = row["maf_sample_naive_s"] / row["maf_sample_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def vector_table(rows: list[dict]) -> str:
    head = ("| D | params | MAF log_prob | MAF sample | IAF sample | IAF log_prob | "
            "IAF sample+log_prob | MAF samples/s | MAF sample / log_prob | "
            "IAF log_prob / sample | naive MAF sample | naive / stream | max diff |")
    lines = [head, "|" + "---|" * 13]
    ms = lambda s: f"{1e3 * s:.2f} ms"  # noqa: E731
    for r in rows:
        naive = ms(r["maf_sample_naive_s"]) if "maf_sample_naive_s" in r else "—"
        ratio = f"{r['naive_over_stream']:.1f}x" if "naive_over_stream" in r else "—"
        lines.append(
            f"| {r['features']} | {r['params_per_flow']:,} | {ms(r['maf_log_prob_s'])} | "
            f"{ms(r['maf_sample_s'])} | {ms(r['iaf_sample_s'])} | {ms(r['iaf_log_prob_s'])} | "
            f"{ms(r['iaf_sample_and_log_prob_s'])} | {r['batch'] / r['maf_sample_s']:,.0f} | "
            f"{r['maf_sample_over_log_prob']:.2f}x | {r['iaf_log_prob_over_sample']:.2f}x | "
            f"{naive} | {ratio} | {r['max_abs_diff_stream_vs_naive']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="seqflow benchmarks")
    parser.add_argument("section", choices=["vectors", "sequences", "all"], nargs="?",
                        default="all")
    parser.add_argument("--dims", nargs="+", type=int, default=[8, 64, 256])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per measurement (vectors: 15; sequences: 5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--naive-max-dim", type=int, default=256,
                        help="skip the slow naive-path timing above this D")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args, rest = parser.parse_known_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": args.threads, "device": str(device)},
    }
    if args.section in ("vectors", "all"):
        repeats = 15 if args.repeats is None else args.repeats
        rows = bench_vectors(args.dims, args.batch, repeats, device, args.naive_max_dim)
        report["vectors"] = rows
        print(vector_table(rows))
    if args.section in ("sequences", "all"):
        import bench_sequences  # a sibling script: its folder is sys.path[0] when run as one

        if args.repeats is not None:
            rest = [*rest, "--repeats", str(args.repeats)]
        report["sequences"] = bench_sequences.main(rest, device=device)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
