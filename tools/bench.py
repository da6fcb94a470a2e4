"""Benchmarks of the MAF/IAF trade-off and of the sequential direction's speed.

    python tools/bench.py vectors [--dims 8 64 256] [--batch 1024] [--json out.json]
    python tools/bench.py sequences ...   # tools/bench_sequences.py (sequence flows)
    python tools/bench.py maf-stack [--json out.json]
    python tools/bench.py speed --before DIR [--rounds 2] [--json out.json]
    python tools/bench.py all

``vectors`` times one MAF layer and one IAF layer (MADE conditioner, two hidden layers of width
``max(64, 2 D)``) inside a :class:`seqflow.Flow` with a standard normal base: MAF log_prob (one
pass), MAF sample (degree-sliced stream), IAF sample (one pass), IAF log_prob (stream), IAF
sample_and_log_prob (one pass), and MAF sample on the naive D-pass path for reference. It checks
that streamed and naive samples agree and prints a markdown table.

``maf-stack`` times sampling against log_prob of 5-layer MAFs (D = 64 with MADE 128 x 2, and
D = 256 with MADE 256 x 2) at batch 256 and 1024 with 1 and 2 process threads, interleaved.

``speed`` is the before/after comparison of issue 14 from one command: it runs the
``maf-stack`` section and the streaming-step section of ``tools/bench_sequences.py`` in
subprocesses, alternating between the source tree ``--before`` (e.g. an unpacked older commit)
and this tree for ``--rounds`` rounds, then the chunked one-pass section
(chunked and whole passes interleaved in one process) once in each tree, and prints the tables
with medians. A tree without chunking runs the whole pass only up to ``--whole-max-values``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from seqflow.distributions import Flow, StandardNormal
from seqflow.transforms.maf import IAF, MAF
from seqflow.transforms.stacks import maf_steps

ROOT = Path(__file__).resolve().parents[1]


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


def bench_maf_stack(shapes: list[tuple[int, int]], batches: list[int], threads: list[int],
                    repeats: int) -> list[dict]:
    """Sample vs log_prob of a 5-layer MAF (``maf_steps``) per (D, hidden, batch, threads)."""
    rows = []
    for features, hidden in shapes:
        torch.manual_seed(0)
        flow = Flow(maf_steps(features, 5, hidden_features=hidden), StandardNormal(features))
        with torch.no_grad():
            for p in flow.parameters():
                p.normal_(0.0, 0.02)
        flow.eval()
        for batch in batches:
            x = torch.randn(batch, features)
            times: dict = {(th, op): [] for th in threads for op in ("sample", "log_prob")}
            with torch.no_grad():
                for th in threads:  # warm-up: caches, thread pools
                    torch.set_num_threads(th)
                    flow.sample(batch)
                    flow.log_prob(x, validate=False)
                for _ in range(repeats):
                    for th in threads:  # interleaved: load changes hit every config alike
                        torch.set_num_threads(th)
                        for op, fn in (("sample", lambda: flow.sample(batch)),  # noqa: B023
                                       ("log_prob", lambda: flow.log_prob(x, validate=False))):  # noqa: B023
                            start, cpu = time.perf_counter(), time.process_time()
                            fn()
                            times[(th, op)].append((time.perf_counter() - start,
                                                    time.process_time() - cpu))
            for th in threads:
                sample = statistics.median(t for t, _ in times[(th, "sample")])
                log_prob = statistics.median(t for t, _ in times[(th, "log_prob")])
                cpu_sample = statistics.median(c for _, c in times[(th, "sample")])
                cpu_log_prob = statistics.median(c for _, c in times[(th, "log_prob")])
                rows.append({"features": features, "hidden": hidden, "batch": batch,
                             "process_threads": th, "sample_s": sample, "log_prob_s": log_prob,
                             "sample_over_log_prob": sample / log_prob,
                             "cpu_sample_over_log_prob": cpu_sample / cpu_log_prob})
                print(json.dumps(rows[-1]), flush=True)
    torch.set_num_threads(1)
    return rows


def maf_stack_table(rows: list[dict]) -> str:
    lines = ["| D | MADE | batch | process threads | sample | log_prob | sample / log_prob "
             "(wall) | sample / log_prob (CPU) |", "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['features']} | {r['hidden']} x 2 | {r['batch']} | "
                     f"{r['process_threads']} | {1e3 * r['sample_s']:.1f} ms | "
                     f"{1e3 * r['log_prob_s']:.2f} ms | {r['sample_over_log_prob']:.1f}x | "
                     f"{r['cpu_sample_over_log_prob']:.1f}x |")
    return "\n".join(lines)


def _child(tree: Path, argv: list[str]) -> dict:
    """Run a benchmark script of this folder against the seqflow of ``tree``; its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, *argv, "--json", str(out)], check=True, env=env,
                       cwd=ROOT, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def _median_rows(runs: list[list[dict]], keys: tuple[str, ...], values: tuple[str, ...]):
    """Rows of several runs merged by ``keys``, each value the median over the runs."""
    merged: dict = {}
    for rows in runs:
        for r in rows:
            merged.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, group in merged.items():
        row = dict(zip(keys, key, strict=True))
        for v in values:
            row[v] = statistics.median(g[v] for g in group)
        row["runs"] = len(group)
        out.append(row)
    return out


def bench_speed(before: Path, rounds: int, one_pass: list[str]) -> dict:
    """Issue 14's before/after tables (see the module docstring)."""
    tools = Path(__file__).resolve().parent
    trees = {"before": before.resolve(), "after": ROOT}
    stack: dict = {name: [] for name in trees}
    stream: dict = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            stack[name].append(_child(tree, [str(tools / "bench.py"), "maf-stack"])["maf_stack"])
            stream[name].append(_child(tree, [str(tools / "bench_sequences.py"), "--section",
                                              "stream"]))
            print(f"round done: {name}", flush=True)
    report: dict = {"rounds": rounds}
    for name in trees:
        report[f"maf_stack_{name}"] = _median_rows(
            stack[name], ("features", "hidden", "batch", "process_threads"),
            ("sample_s", "log_prob_s", "sample_over_log_prob", "cpu_sample_over_log_prob"))
        report[f"stream_{name}"] = _median_rows(
            [run["rows"] for run in stream[name]], ("batch", "mode", "process_threads"),
            ("us_per_step", "cpu_us_per_step", "samples_per_s", "x_realtime_16k",
             "matmul_fraction", "over_one_pass", "cpu_over_one_pass"))
        report[f"stream_{name}_scalars"] = {
            key: statistics.median(run[key] for run in stream[name])
            for key in ("matmul_flops_per_s_1_thread", "one_pass_s_per_sample_T4096_b1",
                        "one_pass_cpu_s_per_sample_T4096_b1", "flops_per_step_per_sample")}
    for name, tree in trees.items():
        report[f"one_pass_{name}"] = _child(tree, [str(tools / "bench_sequences.py"),
                                                   "--section", "one-pass", *one_pass])
    return report


def speed_tables(report: dict) -> str:
    parts = []
    for name in ("before", "after"):
        scalars = report[f"stream_{name}_scalars"]
        parts.append(
            f"Streaming step, {name} (medians of {report['rounds']} runs): one streaming step "
            f"is {scalars['flops_per_step_per_sample'] / 1e3:.1f} kFLOP per sample; measured "
            f"matmul throughput {scalars['matmul_flops_per_s_1_thread'] / 1e9:.1f} GFLOP/s on "
            f"1 thread; one-pass density at T = 4096, batch 1: "
            f"{1e6 * scalars['one_pass_s_per_sample_T4096_b1']:.2f} us per sample.\n")
        import bench_sequences

        parts.append(bench_sequences.stream_table({"rows": report[f"stream_{name}"]}))
        parts.append(f"\n5-layer MAF, {name}:\n")
        parts.append(maf_stack_table(report[f"maf_stack_{name}"]))
        parts.append("")
    import bench_sequences

    for name in ("before", "after"):
        parts.append(f"One-pass IAF sampling, {name}:\n")
        parts.append(bench_sequences.one_pass_table(report[f"one_pass_{name}"]["rows"]))
        parts.append("")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="seqflow benchmarks")
    parser.add_argument("section", choices=["vectors", "sequences", "maf-stack", "speed", "all"],
                        nargs="?", default="all")
    parser.add_argument("--before", type=Path, default=None,
                        help="speed: the source tree (holding a seqflow package) to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="speed: alternating rounds")
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
    load_start = list(os.getloadavg())  # the machine may be shared: say how busy it was
    report: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": args.threads, "device": str(device),
                    "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}},
    }
    if args.section == "maf-stack":
        report["maf_stack"] = bench_maf_stack([(64, 128), (256, 256)], [256, 1024], [1, 2],
                                              5 if args.repeats is None else args.repeats)
        print(maf_stack_table(report["maf_stack"]))
    if args.section == "speed":
        if args.before is None or not (args.before / "seqflow").is_dir():
            raise ValueError(f"bench.py speed: --before must be a source tree holding a seqflow "
                             f"package, got {args.before}")
        report["speed"] = bench_speed(args.before, args.rounds, rest)
        print(speed_tables(report["speed"]))
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
    report["machine"]["load_average_start_end"] = [load_start, list(os.getloadavg())]
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
