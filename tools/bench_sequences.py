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
import os
import statistics
import subprocess
import sys
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


# --- issue 14: streaming step cost and chunked one-pass inference -------------------------
try:  # absent before chunked inference existed; the benchmark then measures the whole pass
    from seqflow.nn.chunking import chunk_values
except ImportError:  # pragma: no cover
    chunk_values = None


def perturbed(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights away from the identity initialization (the work is then realistic)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module.eval()


def step_flops(net) -> int:
    """Multiply-adds x 2 of one streaming step of a one-channel WaveNet, per sample.

    Counted from the layer shapes: the input convolution's past taps, every block's past and
    current taps, residual (all but the last block) and skip 1x1s, and the two-layer head.
    """
    k = net.input_conv.kernel_size[0]
    r = net.blocks[0].residual_channels
    skip = net.head_hidden.in_channels
    head = net.head_hidden.out_channels
    c = net.channels
    macs = (k - 1) * c * r
    macs += len(net.blocks) * ((k - 1) * r * 2 * r + r * 2 * r + r * skip)
    macs += (len(net.blocks) - 1) * r * r
    macs += skip * head + head * 2 * c
    return 2 * macs


def matmul_flops_per_second(size: int = 512, repeats: int = 15) -> float:
    """Measured float32 ``size x size`` matmul throughput on the current threads (FLOP/s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    return 2 * size**3 / timed(lambda: a @ b, repeats)


def _proc_status(field: str) -> float:
    """A memory field of /proc/self/status in bytes (NaN where /proc is unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return 1024.0 * int(line.split()[1])
    except OSError:
        pass
    return float("nan")


def one_pass_peak_child(spec: str, residual: int, layers: int) -> None:
    """In a fresh process: the peak resident memory one IAF sampling call adds (bytes).

    ``spec`` is ``batch,length,variant``. The baseline is the resident memory after the model,
    the noise and a short warm-up call exist; the kernel's high-water mark is reset there
    (``/proc/self/clear_refs``), so the printed number is what the call itself needs.
    """
    batch, length, variant = spec.split(",")
    size = dict(residual_channels=residual, skip_channels=residual, blocks=layers)
    iaf = perturbed(SequenceIAF(1, **size), seed=1)
    z = torch.randn(int(batch), 1, int(length))
    with torch.inference_mode():
        iaf.inverse(z[..., :64])
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _proc_status("VmRSS")
        if chunk_values is None:
            iaf.inverse(z)
        else:
            with chunk_values(None if variant == "chunked" else 0):
                iaf.inverse(z)
    print(json.dumps({"peak_bytes": _proc_status("VmHWM") - before}))


def measure_peak(batch: int, length: int, variant: str, args) -> float:
    """:func:`one_pass_peak_child` in a subprocess; NaN if it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peak-child",
           f"{batch},{length},{variant}", "--residual", str(args.residual),
           "--layers", str(args.layers)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    try:
        return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])
    except (ValueError, IndexError, KeyError):
        print(done.stderr[-2000:], file=sys.stderr)
        return float("nan")


def bench_stream(args) -> dict:
    """Microseconds per streaming step (MAF sampling) by batch, step mode and process threads;
    arithmetic per step, its share of measured matmul throughput, and the ratio to the
    one-pass cost per sample at T = 4096, batch 1."""
    size = dict(residual_channels=args.residual, skip_channels=args.residual, blocks=args.layers)
    maf = perturbed(SequenceMAF(1, **size))
    net = maf.conditioner
    modes = ["auto", "eager"] if hasattr(net, "step_mode") else ["default"]
    if args.compile and hasattr(net, "step_mode"):
        modes.append("compile")
    threads_list = [1, 2]
    flops = step_flops(net)
    result: dict = {"flops_per_step_per_sample": flops, "rows": []}
    with torch.inference_mode():
        torch.set_num_threads(1)
        result["matmul_flops_per_s_1_thread"] = matmul_flops_per_second()
        x = torch.randn(1, 1, 4096)
        maf(x)
        walls, cpus = [], []
        for _ in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            maf(x)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        one_pass = statistics.median(walls) / 4096
        result["one_pass_s_per_sample_T4096_b1"] = one_pass
        result["one_pass_cpu_s_per_sample_T4096_b1"] = statistics.median(cpus) / 4096
        for batch in args.stream_batches:
            steps = args.stream_steps if batch <= 16 else max(16, args.stream_steps // 8)
            z = torch.randn(batch, 1, steps)
            configs = [(m, th) for m in modes for th in threads_list]
            times: dict = {c: [] for c in configs}
            for mode, th in configs:  # warm-up (and compilation) outside the timing
                torch.set_num_threads(th)
                if mode != "default":
                    net.step_mode = mode
                maf.inverse(z[..., :8])
            for _ in range(args.repeats_slow):
                for mode, th in configs:  # interleaved: load changes hit every config alike
                    torch.set_num_threads(th)
                    if mode != "default":
                        net.step_mode = mode
                    start, cpu = time.perf_counter(), time.process_time()
                    maf.inverse(z)
                    times[(mode, th)].append(((time.perf_counter() - start) / steps,
                                              (time.process_time() - cpu) / steps))
            for (mode, th), ts in times.items():
                step = statistics.median(t for t, _ in ts)
                result["rows"].append({
                    "batch": batch, "mode": mode, "process_threads": th, "steps": steps,
                    "us_per_step": 1e6 * step,
                    "cpu_us_per_step": 1e6 * statistics.median(c for _, c in ts),
                    "samples_per_s": batch / step,
                    "x_realtime_16k": batch / step / 16000,
                    "matmul_fraction": flops * batch / step / result["matmul_flops_per_s_1_thread"],
                    "over_one_pass": step / batch / one_pass,
                    "cpu_over_one_pass": statistics.median(c for _, c in ts) / batch
                    / result["one_pass_cpu_s_per_sample_T4096_b1"],
                })
        if hasattr(net, "step_mode"):
            net.step_mode = "auto"
    torch.set_num_threads(1)
    return result


def stream_table(result: dict) -> str:
    head = ("| batch | step mode | process threads | us / step (wall) | us / step (CPU) | "
            "samples/s | x real time @16 kHz | share of matmul throughput | "
            "stream / one-pass per sample (wall) | (CPU) |")
    lines = [head, "|" + "---|" * 10]
    for r in result["rows"]:
        lines.append(
            f"| {r['batch']} | {r['mode']} | {r['process_threads']} | {r['us_per_step']:,.1f} | "
            f"{r['cpu_us_per_step']:,.1f} | {r['samples_per_s']:,.0f} | "
            f"{r['x_realtime_16k']:.2f} | {100 * r['matmul_fraction']:.1f} % | "
            f"{r['over_one_pass']:.1f}x | {r['cpu_over_one_pass']:.1f}x |"
        )
    return "\n".join(lines)


def bench_one_pass(args) -> list[dict]:
    """One-pass IAF sampling throughput and added peak memory by length and batch, chunked
    (the default at inference) and as one piece, alternating within one process."""
    size = dict(residual_channels=args.residual, skip_channels=args.residual, blocks=args.layers)
    iaf = perturbed(SequenceIAF(1, **size), seed=1)
    rows = []
    with torch.inference_mode():
        iaf.inverse(torch.randn(1, 1, 64))
        for batch in args.batches:
            for length in args.one_pass_lengths:
                z = torch.randn(batch, 1, length)
                variants = ["chunked"] if chunk_values is not None else []
                if batch * length <= args.whole_max_values:
                    variants.append("whole")
                if not variants:  # a tree without chunking: the whole pass would not fit
                    continue
                repeats = args.repeats if batch * length <= 1 << 18 else 1
                measured: dict = {v: [] for v in variants}
                for _ in range(repeats):
                    for variant in variants:  # interleaved: load changes hit both alike
                        setting = None if variant == "chunked" else 0
                        start = time.perf_counter()
                        if chunk_values is None:
                            iaf.inverse(z)
                        else:
                            with chunk_values(setting):
                                iaf.inverse(z)
                        measured[variant].append(time.perf_counter() - start)
                for variant, secs in measured.items():
                    sec = statistics.median(secs)
                    rows.append({"batch": batch, "length": length, "variant": variant,
                                 "repeats": repeats, "seconds": sec,
                                 "samples_per_s": batch * length / sec,
                                 "peak_bytes": measure_peak(batch, length, variant, args)})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def one_pass_table(rows: list[dict]) -> str:
    head = ("| T | batch | variant | calls | time | samples/s | x real time @16 kHz | "
            "added peak memory |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['length']:,} | {r['batch']} | {r['variant']} | {r['repeats']} | "
            f"{r['seconds']:.3f} s | {r['samples_per_s']:,.0f} | "
            f"{r['samples_per_s'] / 16000:.1f} | {r['peak_bytes'] / 2**20:,.0f} MiB |"
        )
    return "\n".join(lines)


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
    parser.add_argument("--section", choices=["table", "stream", "one-pass"], default="table",
                        help="table: MAF/IAF/WaveGlow by T and batch (issue 4); stream: cost of "
                             "a streaming step; one-pass: chunked one-pass throughput and memory")
    parser.add_argument("--stream-batches", nargs="+", type=int, default=[1, 16, 256])
    parser.add_argument("--stream-steps", type=int, default=512,
                        help="steps per timed streaming call (batch > 16: an eighth)")
    parser.add_argument("--compile", action="store_true",
                        help="stream section: also time step_mode='compile' (slow to compile)")
    parser.add_argument("--one-pass-lengths", nargs="+", type=int,
                        default=[1000, 10000, 16384, 100000, 1000000])
    parser.add_argument("--whole-max-values", type=int, default=1_600_000,
                        help="one-pass section: time the unchunked pass up to batch x T values")
    parser.add_argument("--peak-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child is not None:
        torch.set_num_threads(1)
        one_pass_peak_child(args.peak_child, args.residual, args.layers)
        return {}
    if device is not None and device.type != "cpu":
        raise ValueError(f"bench_sequences: only CPU timings are implemented, got {device}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.section != "table":
        if args.section == "stream":
            report = bench_stream(args)
            print(stream_table(report))
        else:
            report = {"rows": bench_one_pass(args)}
            print(one_pass_table(report["rows"]))
        report.update(torch=torch.__version__, threads=torch.get_num_threads())
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1))
        return report
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
