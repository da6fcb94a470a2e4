"""Streaming cost per time step of the compiled kernels and of the general (eager) step.

    python tools/ab/general_step.py [--rounds 3] [--steps 256] [--json OUT]

MAF sampling (``SequenceMAF.inverse`` under ``torch.inference_mode``, one intra-op thread) of
one layer, in microseconds per time step (one step = all ``C`` channels of one time index):

* WaveNet conditioner (32 residual and 32 skip channels, 10 blocks, kernel 2), one channel,
  ``step_mode="auto"``: the compiled single-channel kernel (``seqflow.nn.wavenet_kernel``);
* the same network with ``step_mode="eager"``: the general step (a few dozen PyTorch
  operations per step, the reference), which runs where no compiled path applies (gradients
  recorded, not on CPU, one channel above batch 32);
* WaveNet with 4 and 12 channels (``auto`` = the compiled channel kernel at these batches);
* LSTM conditioner (64 hidden, 64 head features: the defaults) with 1 and 4 channels
  (``auto`` = the compiled LSTM step).

``python tools/bench.py steps`` measures every path beside its one-pass cost; this tool keeps
the committed record ``docs/results/bench_general_step.json`` regenerable.

Batches 1 and 16. Configurations alternate within every round (load changes hit them alike);
each row is the median over rounds. Writes the machine, torch version, load averages and the
rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from seqflow import SequenceMAF

CONFIGS = [  # (conditioner, channels, step_mode)
    ("wavenet", 1, "auto"),
    ("wavenet", 1, "eager"),
    ("wavenet", 4, "auto"),
    ("wavenet", 12, "auto"),
    ("lstm", 1, "auto"),
    ("lstm", 4, "auto"),
]


def build(conditioner: str, channels: int) -> SequenceMAF:
    """One perturbed SequenceMAF layer (weights moved away from the identity start)."""
    torch.manual_seed(0)
    size = (dict(residual_channels=32, skip_channels=32, blocks=10) if conditioner == "wavenet"
            else dict(hidden_features=64, head_features=64))
    layer = SequenceMAF(channels, conditioner=conditioner, **size)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return layer.eval()


def path_taken(layer: SequenceMAF, batch: int, steps: int) -> str:
    """``"kernel"`` when the stream runs the compiled kernel, else ``"general"``."""
    state = layer.conditioner.start_stream(batch, None, steps)
    return "kernel" if getattr(state, "runs_sequences", False) else "general"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc)
    cases = []
    for conditioner, channels, mode in CONFIGS:
        layer = build(conditioner, channels)  # outside inference mode: packing reads versions
        if conditioner == "wavenet":
            layer.conditioner.step_mode = mode
        for batch in args.batches:
            z = torch.randn(batch, channels, args.steps)
            with torch.inference_mode():
                layer.inverse(z[..., :8])  # warm-up (and the kernel's compilation)
                path = path_taken(layer, batch, args.steps)
            cases.append({"conditioner": conditioner, "channels": channels, "mode": mode,
                          "batch": batch, "path": path, "layer": layer, "z": z, "times": []})
    with torch.inference_mode():
        for _ in range(args.rounds):
            for case in cases:
                start = time.perf_counter()
                case["layer"].inverse(case["z"])
                case["times"].append((time.perf_counter() - start) / args.steps)
    rows = []
    for case in cases:
        step = statistics.median(case["times"])
        rows.append({k: case[k] for k in ("conditioner", "channels", "mode", "batch", "path")}
                    | {"us_per_step": 1e6 * step, "us_per_step_rounds":
                       [1e6 * t for t in case["times"]],
                       "steps_per_s": 1 / step, "x_realtime_16k": case["batch"] / step / 16000})
    result = {
        "command": "python tools/ab/general_step.py " + " ".join(argv or sys.argv[1:]),
        "date_utc": started.strftime("%Y-%m-%d %H:%M"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": 1,
                    "load_average_start_end": [load_start, os.getloadavg()]},
        "rounds": args.rounds, "steps": args.steps, "rows": rows,
    }
    print("| conditioner | channels | batch | step_mode | path | us / step | x real time @16 kHz |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['conditioner']} | {r['channels']} | {r['batch']} | {r['mode']} | "
              f"{r['path']} | {r['us_per_step']:,.1f} | {r['x_realtime_16k']:.3g} |")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
