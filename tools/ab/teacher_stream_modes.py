"""Streamed sampling of a speech teacher run: the eager step path against the compiled kernel.

    python tools/ab/teacher_stream_modes.py runs/teacher_cpu [--frames 32] [--rounds 3]

One thread; the two modes alternate in one process (same random mel, same seed); prints the
median seconds and real-time factor of each and the largest difference of their samples.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from seqflow.speech import stream_from_mel
from seqflow.train import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    flow, cfg, _ = load_run(args.run)
    mel = torch.randn(1, cfg.data.mel.n_mels, args.frames,
                      generator=torch.Generator().manual_seed(0))
    mel = mel - 5.0
    nets = [m for m in flow.modules() if hasattr(m, "step_mode")]
    seconds: dict[str, list[float]] = {"eager": [], "auto": []}
    audio = {}
    for _ in range(args.rounds):
        for mode in seconds:
            for net in nets:
                net.step_mode = mode
            start = time.perf_counter()
            with torch.no_grad():
                audio[mode] = stream_from_mel(flow, mel, cfg.data.mel.sample_rate, seed=0,
                                              progress=False).audio
            seconds[mode].append(time.perf_counter() - start)
    clip = args.frames * cfg.data.mel.hop_length / cfg.data.mel.sample_rate
    for mode, times in seconds.items():
        median = statistics.median(times)
        print(f"{mode}: median {median:.3f} s for {clip:.3f} s of audio, RTF {median / clip:.3g}")
    print(f"max |eager - auto| = {(audio['eager'] - audio['auto']).abs().max().item():.2g}")


if __name__ == "__main__":
    main()
