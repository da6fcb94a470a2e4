"""Benchmarks of the MAF/IAF trade-off and of the sequential direction's speed.

    python tools/bench.py vectors [--dims 8 64 256] [--batch 1024] [--json out.json]
    python tools/bench.py sequences ...   # tools/bench_sequences.py (sequence flows)
    python tools/bench.py maf-stack [--json out.json]
    python tools/bench.py speed --before DIR [--rounds 2] [--json out.json]
    python tools/bench.py steps [--rounds 3] [--json out.json]
    python tools/bench.py all

``vectors`` times one MAF layer and one IAF layer (MADE conditioner, two hidden layers of width
``max(64, 2 D)``) inside a :class:`seqflow.Flow` with a standard normal base: MAF log_prob (one
pass), MAF sample (degree-sliced stream), IAF sample (one pass), IAF log_prob (stream), IAF
sample_and_log_prob (one pass), and MAF sample on the naive D-pass path for reference. It checks
that streamed and naive samples agree and prints a markdown table.

``maf-stack`` times sampling against log_prob of 5-layer MAFs (D = 64 with MADE 128 x 2, and
D = 256 with MADE 256 x 2) at batch 256 and 1024 with 1 and 2 process threads, interleaved.

``steps`` times the streaming step of one SequenceMAF layer (MAF sampling under
``torch.inference_mode``, one thread) for every step path: WaveNet (10 blocks x 32 channels)
with one channel at batch 1, 16 and 256 and with 4 and 12 channels at 64, 256 and 1024 paths,
and the LSTM conditioner (64 units) at batch 1, 16 and 256 (one channel) and 64 and 1024 paths
(4 and 12 channels), each with ``step_mode="auto"`` (what a stream runs) and ``"eager"`` (the
reference step); in microseconds per step (all channels of one
time index), as a ratio to the one-pass density's cost per time step at the same batch, and as
the fraction of the measured single-thread matmul throughput that the step's multiply-adds
(counted from the layer shapes, one column per step) reach. Configurations alternate within
every round; each row is the median over the rounds.

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
from seqflow.train import provenance
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


STEP_SHAPES = [  # (conditioner, channels, batches)
    ("wavenet", 1, [1, 16, 256]), ("wavenet", 4, [64, 256, 1024]),
    ("wavenet", 12, [64, 256, 1024]),
    ("lstm", 1, [1, 16, 256]), ("lstm", 4, [64, 1024]), ("lstm", 12, [64, 1024]),
]


def step_layer(conditioner: str, channels: int):
    """One perturbed SequenceMAF layer of the benchmark shapes."""
    from seqflow import SequenceMAF

    torch.manual_seed(0)
    size = (dict(residual_channels=32, skip_channels=32, blocks=10) if conditioner == "wavenet"
            else dict(hidden_features=64, head_features=64))
    layer = SequenceMAF(channels, conditioner=conditioner, **size)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return layer.eval()


def lstm_step_flops(net) -> int:
    """Multiply-adds x 2 of one LSTM streaming step per sample (every layer's gates, the head)."""
    lstm, head = net.lstm, net.head_hidden
    macs = sum(4 * lstm.hidden_size * (getattr(lstm, f"weight_ih_l{k}").shape[1]
                                       + lstm.hidden_size) for k in range(lstm.num_layers))
    macs += head.in_channels * head.out_channels + head.out_channels * 2 * net.channels
    return 2 * macs


def bench_steps(rounds: int) -> dict:
    """``steps``: see the module docstring."""
    import bench_sequences

    cases = []
    for conditioner, channels, batches in STEP_SHAPES:
        layer = step_layer(conditioner, channels)
        net = layer.conditioner
        flops = (bench_sequences.step_flops(net) if conditioner == "wavenet"
                 else lstm_step_flops(net))
        modes = ["auto", "eager"]
        for batch in batches:
            steps = max(8, min(256, 8192 // (batch * channels)))
            z = torch.randn(batch, channels, steps)
            x = torch.randn(batch, channels, max(64, steps))
            for mode in modes:
                net.step_mode = mode
                with torch.inference_mode():
                    layer.inverse(z[..., :2])  # warm-up (and the kernels' compilation)
                    state = net.start_stream(batch, None, steps)
                    path = "eager step"
                    if getattr(state, "runs_sequences", False):
                        kind = getattr(state, "kernel", "lstm")
                        path = "degree blocks" if kind == "blocks" else f"kernel ({kind})"
                cases.append({"conditioner": conditioner, "channels": channels, "batch": batch,
                              "mode": mode, "path": path, "layer": layer, "z": z, "x": x,
                              "flops_per_sample": flops, "step": [], "one_pass": []})
    with torch.inference_mode():
        for _ in range(rounds):
            for case in cases:
                layer, z, x = case["layer"], case["z"], case["x"]
                layer.conditioner.step_mode = case["mode"]
                start = time.perf_counter()
                layer.inverse(z)
                case["step"].append((time.perf_counter() - start) / z.shape[-1])
                start = time.perf_counter()
                layer(x)
                case["one_pass"].append((time.perf_counter() - start) / x.shape[-1])
        matmul = statistics.median(bench_sequences.matmul_flops_per_second()
                                   for _ in range(3))
    rows = []
    for case in cases:
        step, one_pass = statistics.median(case["step"]), statistics.median(case["one_pass"])
        rows.append({k: case[k] for k in ("conditioner", "channels", "batch", "mode", "path",
                                          "flops_per_sample")}
                    | {"us_per_step": 1e6 * step, "one_pass_us_per_step": 1e6 * one_pass,
                       "over_one_pass": step / one_pass,
                       "matmul_fraction": case["flops_per_sample"] * case["batch"] / step / matmul,
                       "us_per_step_rounds": [1e6 * t for t in case["step"]]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "us_per_step_rounds"}),
              flush=True)
    return {"rounds": rounds, "matmul_flops_per_s_1_thread": matmul, "rows": rows}


def steps_table(result: dict) -> str:
    lines = ["| conditioner | channels | batch | step_mode | path | us / step | one pass, us / "
             "step | step / one pass | matmul fraction |", "|" + "---|" * 9]
    for r in result["rows"]:
        lines.append(f"| {r['conditioner']} | {r['channels']} | {r['batch']} | {r['mode']} | "
                     f"{r['path']} | {r['us_per_step']:,.1f} | {r['one_pass_us_per_step']:,.1f} "
                     f"| {r['over_one_pass']:.2f}x | {r['matmul_fraction']:.3f} |")
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
    parser.add_argument("section", choices=["vectors", "sequences", "maf-stack", "speed", "steps",
                                            "all"],
                        nargs="?", default="all")
    parser.add_argument("--before", type=Path, default=None,
                        help="speed: the source tree (holding a seqflow package) to compare with")
    parser.add_argument("--rounds", type=int, default=None,
                        help="speed: alternating rounds (2); steps: interleaved rounds (3)")
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
    source = provenance(["python", "tools/bench.py", *(sys.argv[1:] if argv is None else argv)],
                        Path(__file__).resolve().parents[1])
    report: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu": source["machine"]["cpu"], "cores": source["machine"]["cores"],
                    "torch": torch.__version__, "threads": args.threads, "device": str(device),
                    "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}},
        "date": source["date"], "commit": source["commit"],
        "uncommitted_changes": source["uncommitted_changes"],
    }
    if args.section == "maf-stack":
        report["maf_stack"] = bench_maf_stack([(64, 128), (256, 256)], [256, 1024], [1, 2],
                                              5 if args.repeats is None else args.repeats)
        print(maf_stack_table(report["maf_stack"]))
    if args.section == "speed":
        if args.before is None or not (args.before / "seqflow").is_dir():
            raise ValueError(f"bench.py speed: --before must be a source tree holding a seqflow "
                             f"package, got {args.before}")
        report["speed"] = bench_speed(args.before, args.rounds or 2, rest)
        print(speed_tables(report["speed"]))
    if args.section == "steps":
        report["command"] = "python tools/bench.py " + " ".join(argv or sys.argv[1:])
        report["steps"] = bench_steps(args.rounds or 3)
        print(steps_table(report["steps"]))
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
