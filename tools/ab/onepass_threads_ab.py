"""Issue 14's two open rows, A/B against an older tree: one-pass speed and 2-thread streaming.

    python tools/ab/onepass_threads_ab.py --before TREE [--rounds 5] [--json OUT]

``TREE`` holds an older ``seqflow`` package (e.g. ``git archive 50e624d seqflow | tar -x -C
TREE``). Each round runs one subprocess per tree, alternating which goes first; each child
times, with median of 15 calls:

* one-pass calls on 1 thread: 5-layer MAF ``log_prob`` (D = 64, hidden 128, batch 256 and
  1024; D = 256, hidden 256, batch 256), ``SequenceMAF`` ``log_prob`` and ``SequenceIAF``
  sampling (R = 32, 10 blocks, T = 4096, batch 1 and 16);
* streaming at process threads 1 and 2: 5-layer MAF sampling (D = 64, batch 256) and
  ``SequenceMAF`` sampling (T = 256, batch 1, 16, 256).

Prints the median over rounds of each time and the after / before ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r'''
import json, statistics, sys, time, torch
from seqflow import Flow, StandardNormal
from seqflow.transforms import SequenceIAF, SequenceMAF, SequenceStack
from seqflow.transforms.stacks import maf_steps

def median_ms(fn, repeats=15):
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3

def vector_flow(d, hidden):
    torch.manual_seed(0)
    flow = Flow(maf_steps(d, 5, hidden_features=hidden), StandardNormal(d)).eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, 0.02)
    return flow

def sequence_stack(cls):
    torch.manual_seed(0)
    layer = cls(1, residual_channels=32, skip_channels=32, blocks=10)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return SequenceStack([layer]).eval()

out = {}
torch.set_num_threads(1)
with torch.no_grad():
    for d, hidden, batch in ((64, 128, 256), (64, 128, 1024), (256, 256, 256)):
        flow, x = vector_flow(d, hidden), torch.randn(batch, d)
        out[f"one-pass MAF log_prob D={d} batch={batch}"] = median_ms(lambda: flow.log_prob(x))
    maf, iaf = sequence_stack(SequenceMAF), sequence_stack(SequenceIAF)
    for batch in (1, 16):
        x = 0.1 * torch.randn(batch, 1, 4096)
        out[f"one-pass SequenceMAF log_prob T=4096 batch={batch}"] = median_ms(lambda: maf(x))
        out[f"one-pass SequenceIAF sample T=4096 batch={batch}"] = median_ms(lambda: iaf.inverse(x))
    flow = vector_flow(64, 128)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out[f"stream MAF sample D=64 batch=256 threads={threads}"] = median_ms(
            lambda: flow.sample(256), repeats=7)
        for batch in (1, 16, 256):
            z = torch.randn(batch, 1, 256)
            out[f"stream SequenceMAF sample T=256 batch={batch} threads={threads}"] = median_ms(
                lambda: maf.inverse(z), repeats=5)
print(json.dumps(out))
'''


def child(tree: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd=tree: ``python -c`` puts the working directory first on sys.path, ahead of PYTHONPATH
    check = f"\nassert seqflow.__file__.startswith({str(tree)!r}), seqflow.__file__\n"
    result = subprocess.run([sys.executable, "-c", CHILD + "\nimport seqflow" + check],
                            env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    load_start = os.getloadavg()
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for name in order:
            runs[name].append(child(getattr(args, name)))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    medians = {name: {k: statistics.median(run[k] for run in rows) for k in rows[0]}
               for name, rows in runs.items()}
    print("| measurement (ms, median of rounds) | before | after | after / before |")
    print("|---|---:|---:|---:|")
    for key, before in medians["before"].items():
        after = medians["after"][key]
        print(f"| {key} | {before:.3f} | {after:.3f} | {after / before:.2f} |")
    for threads_key in [k for k in medians["after"] if k.endswith("threads=2")]:
        one = threads_key.replace("threads=2", "threads=1")
        for name in ("before", "after"):
            print(f"{name}: {threads_key.rsplit(' ', 1)[0]}: 2 threads / 1 thread = "
                  f"{medians[name][threads_key] / medians[name][one]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                               time.gmtime()),
                                         "load_average_start": load_start,
                                         "load_average_end": os.getloadavg(),
                                         "rounds": args.rounds, "runs": runs,
                                         "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
