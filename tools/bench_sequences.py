"""Benchmark of the sequence flows: MAF vs IAF vs WaveGlow over (batch, 1, T) on CPU.

    python tools/bench_sequences.py [--lengths 1024 4096 16384] [--batches 1 16]
        [--naive-full-budget 150] [--json out.json] [--plot docs/sequence_bench.png]
    python tools/bench.py sequences ...    # the same, through the shared entry point

Times (median over ``--repeats``, ``torch.inference_mode``, one intra-op thread unless
``--threads``) of one SequenceMAF layer and one SequenceIAF layer (WaveNet conditioner,
``--residual`` channels, ``--layers`` blocks, kernel 2) inside a :class:`Flow`, and a
WaveGlow-style flow:

* MAF log_prob (one pass), MAF sample streaming (ring buffers) and naive (one full conditioner
  pass per step). The naive path runs in full when its predicted time is under
  ``--naive-full-budget`` seconds; otherwise it is timed over ``--naive-steps`` steps and
  extrapolated linearly (every naive step is the same full pass), and the table says so.
* IAF sample (one pass), IAF log_prob streaming.
* WaveGlow-style log_prob and sample (both one pass).

It also checks that streaming and naive MAF samples agree where the naive path ran in full.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from seqflow import Flow, SequenceIAF, SequenceMAF, StandardNormal, WaveGlow  # noqa: E402

SAMPLE_RATES = (16000, 22050)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_flows(args) -> dict[str, Flow]:
    torch.manual_seed(0)
    size = dict(residual_channels=args.residual, skip_channels=args.residual, blocks=args.layers)
    flows = {
        "maf": Flow(SequenceMAF(1, **size), StandardNormal(1)),
        "iaf": Flow(SequenceIAF(1, **size), StandardNormal(1)),
        "waveglow": Flow(
            WaveGlow(1, squeeze_factor=8, steps=args.waveglow_steps,
                     residual_channels=args.residual, blocks=args.waveglow_layers),
            StandardNormal(1),
        ),
    }
    # Fresh flows are the identity (zero last layers); random weights make the work realistic.
    with torch.no_grad():
        for flow in flows.values():
            for p in flow.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return {k: f.eval() for k, f in flows.items()}


def naive_maf_sample(maf: SequenceMAF, z: torch.Tensor, steps: int | None) -> torch.Tensor:
    """MAF inverse on the naive path, optionally cut to ``steps`` full passes."""
    if steps is not None:
        maf.conditioner.num_sequential_steps = lambda y: steps
    try:
        return maf.naive_sequential(z)[0]
    finally:
        maf.conditioner.__dict__.pop("num_sequential_steps", None)


def bench_one(flows, length: int, batch: int, args) -> dict:
    maf, iaf, glow = flows["maf"], flows["iaf"], flows["waveglow"]
    z = torch.randn(batch, 1, length)
    x = maf.sample(batch, length=length)
    r = args.repeats
    slow = max(1, args.repeats_slow)
    row: dict = {"length": length, "batch": batch}
    row["maf_log_prob_s"] = timed(lambda: maf.log_prob(x, validate=False), r)
    row["maf_sample_stream_s"] = timed(lambda: maf.transform.inverse(z), slow)
    row["iaf_sample_s"] = timed(lambda: iaf.transform.inverse(z), r)
    row["iaf_log_prob_stream_s"] = timed(lambda: iaf.log_prob(x, validate=False), slow)
    row["waveglow_log_prob_s"] = timed(lambda: glow.log_prob(x, validate=False), r)
    row["waveglow_sample_s"] = timed(lambda: glow.transform.inverse(z), r)
    # Naive path: a few steps first, to predict the full cost.
    steps = min(args.naive_steps, length)
    per_step = timed(lambda: naive_maf_sample(maf.transform, z, steps), 1) / steps
    predicted = per_step * length
    row["naive_predicted_s"] = predicted
    if predicted <= args.naive_full_budget:
        start = time.perf_counter()
        x_naive = naive_maf_sample(maf.transform, z, None)
        row["maf_sample_naive_s"] = time.perf_counter() - start
        row["naive_measured"] = "full"
        x_stream = maf.transform.inverse(z)[0]
        row["max_abs_diff_stream_vs_naive"] = float((x_stream - x_naive).abs().max())
    else:
        row["maf_sample_naive_s"] = predicted
        row["naive_measured"] = f"extrapolated from {steps} steps"
    row["naive_over_stream"] = row["maf_sample_naive_s"] / row["maf_sample_stream_s"]
    row["maf_stream_over_iaf_sample"] = row["maf_sample_stream_s"] / row["iaf_sample_s"]
    row["iaf_stream_over_maf_log_prob"] = row["iaf_log_prob_stream_s"] / row["maf_log_prob_s"]
    for name in ("maf_sample_stream", "iaf_sample", "waveglow_sample"):
        rate = batch * length / row[f"{name}_s"]
        row[f"{name}_samples_per_s"] = rate
        for sr in SAMPLE_RATES:
            row[f"{name}_x_realtime_{sr}"] = rate / sr
    return row


def table(rows: list[dict]) -> str:
    ms = lambda s: f"{1e3 * s:,.1f}"  # noqa: E731
    head = (
        "| T | batch | MAF log_prob | MAF sample stream | MAF sample naive | naive / stream | "
        "IAF sample | IAF log_prob stream | MAF stream / IAF sample | WaveGlow log_prob | "
        "WaveGlow sample |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        extrapolated = r["naive_measured"] != "full"
        naive = ms(r["maf_sample_naive_s"]) + (" (extrap.)" if extrapolated else "")
        lines.append(
            f"| {r['length']} | {r['batch']} | {ms(r['maf_log_prob_s'])} | "
            f"{ms(r['maf_sample_stream_s'])} | {naive} | {r['naive_over_stream']:.0f}x | "
            f"{ms(r['iaf_sample_s'])} | {ms(r['iaf_log_prob_stream_s'])} | "
            f"{r['maf_stream_over_iaf_sample']:.0f}x | {ms(r['waveglow_log_prob_s'])} | "
            f"{ms(r['waveglow_sample_s'])} |"
        )
    return "\n".join(lines)


def rate_table(rows: list[dict]) -> str:
    head = "| T | batch | op | samples/s | x real time @16 kHz | x real time @22.05 kHz |"
    lines = [head, "|" + "---|" * 6]
    names = {"maf_sample_stream": "MAF sample (stream)", "iaf_sample": "IAF sample",
             "waveglow_sample": "WaveGlow sample"}
    for r in rows:
        for key, label in names.items():
            lines.append(
                f"| {r['length']} | {r['batch']} | {label} | {r[f'{key}_samples_per_s']:,.0f} | "
                f"{r[f'{key}_x_realtime_16000']:.3g} | {r[f'{key}_x_realtime_22050']:.3g} |"
            )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = {
        "maf_log_prob_s": "MAF log_prob (one pass)",
        "maf_sample_stream_s": "MAF sample (stream)",
        "maf_sample_naive_s": "MAF sample (naive)",
        "iaf_sample_s": "IAF sample (one pass)",
        "iaf_log_prob_stream_s": "IAF log_prob (stream)",
        "waveglow_log_prob_s": "WaveGlow log_prob",
        "waveglow_sample_s": "WaveGlow sample",
    }
    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.5), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        sub = sorted((r for r in rows if r["batch"] == batch), key=lambda r: r["length"])
        lengths = [r["length"] for r in sub]
        for key, label in ops.items():
            style = "--" if key == "maf_sample_naive_s" else "-"
            ax.loglog(lengths, [r[key] for r in sub], style, marker="o", label=label)
        ax.set_xlabel("T (samples)")
        ax.set_ylabel("median time (s)")
        ax.set_title(f"batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("seqflow sequence flows on CPU (naive path partly extrapolated; see table)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None, device: torch.device | None = None) -> dict:
    parser = argparse.ArgumentParser(description="seqflow sequence-flow benchmark")
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 4096, 16384])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--residual", type=int, default=32)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--waveglow-steps", type=int, default=4)
    parser.add_argument("--waveglow-layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="for one-pass operations")
    parser.add_argument("--repeats-slow", type=int, default=3, help="for streaming operations")
    parser.add_argument("--naive-steps", type=int, default=16)
    parser.add_argument("--naive-full-budget", type=float, default=150.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    if device is not None and device.type != "cpu":
        raise ValueError(f"bench_sequences: only CPU timings are implemented, got {device}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    flows = build_flows(args)
    rows = []
    with torch.inference_mode():
        for batch in args.batches:
            for length in args.lengths:
                rows.append(bench_one(flows, length, batch, args))
                print(json.dumps(rows[-1]), flush=True)
    params = {k: sum(p.numel() for p in f.parameters()) for k, f in flows.items()}
    receptive = flows["maf"].transform.receptive_field
    print(f"\nparameters: {params}; WaveNet receptive field: {receptive}; "
          f"threads: {torch.get_num_threads()}\n")
    print(table(rows))
    print()
    print(rate_table(rows))
    report = {"rows": rows, "parameters": params, "receptive_field": receptive,
              "threads": torch.get_num_threads(), "torch": torch.__version__}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot is not None:
        plot(rows, args.plot)
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
