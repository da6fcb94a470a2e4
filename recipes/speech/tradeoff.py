"""The teacher/student trade-off: what each direction costs, as real-time factors on this CPU.

A sequence MAF teacher evaluates a density in one pass and samples by streaming; a sequence
IAF student samples in one pass and evaluates the density of given audio by streaming. This
script times all four on one clip:

* teacher streaming sampling (``seqflow sample --mel-from``'s path, chunked streaming);
* student one-pass sampling (``seqflow vocode``'s path: mel and noise to waveform);
* teacher one-pass density (``log_prob`` of the clip's audio given its mel);
* student sequential density (``log_prob`` of the same audio: the IAF's forward streams).

The clip is the first ``--frames`` frames of utterance ``--utterance`` of the teacher's test
split (its log-mel with the teacher's feature settings, which the student must share, and the
matching ``frames * hop`` samples of 16-bit audio). Every measurement is the median wall-clock
time of ``--repeats`` calls after a warm-up call on a two-frame clip; RTF = seconds / seconds
of audio (< 1 is faster than real time). Each ``--threads`` setting is torch's intra-op
thread count; the streaming loops run on :mod:`seqflow.nn.threads`' count (1 unless
overridden), recorded per row as ``stream_threads``.

Usage (serialize timings with the benchmark lock)::

    flock /tmp/seqflow-bench.lock python recipes/speech/tradeoff.py runs/teacher_cpu \\
        runs/student --out docs/results/tradeoff

writes ``DIR/tradeoff.json`` and ``DIR/tradeoff.png`` (log-scale RTF bars) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from seqflow.data.features import LogMel
from seqflow.nn.context import SequenceContext
from seqflow.nn.threads import get_streaming_threads
from seqflow.nn.timing import call_seconds
from seqflow.speech import (
    input_noise,
    intra_op_threads,
    load_vocoder,
    mel_of_audio_file,
    stream_from_mel,
)
from seqflow.train import load_run, recorded_split

METHODS = (
    ("teacher", "sampling", "streaming"),
    ("student", "sampling", "one pass"),
    ("teacher", "density", "one pass"),
    ("student", "density", "streaming"),
)


def clip_of_test_utterance(run_dir: Path, cfg, data_dir: str | None, index: int, frames: int
                           ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(audio (1, 1, frames * hop), mel (1, n_mels, frames), file)`` from the run's test split.

    The log-mel is taken from the whole utterance (as in evaluation), then both are clipped.
    """
    test = recorded_split(run_dir).test
    if not 0 <= index < len(test):
        raise ValueError(f"--utterance {index} is outside the {len(test)} test utterances")
    path = Path(data_dir or cfg.data.path) / test[index]
    audio, mel = mel_of_audio_file(path, LogMel(cfg.data.mel))
    if mel.shape[-1] < frames:
        raise ValueError(f"{path}: {mel.shape[-1]} frames, fewer than --frames {frames}")
    hop = cfg.data.mel.hop_length
    return audio[None, None, : frames * hop], mel[..., :frames].contiguous(), test[index]


def timed_calls(fn: Callable[[int], torch.Tensor], frames: int, repeats: int
                ) -> tuple[list[float], torch.Tensor]:
    """Seconds of ``repeats`` calls ``fn(frames)`` after a warm-up ``fn(2)``, and the last
    result."""
    fn(2)
    return call_seconds(lambda: fn(frames), repeats, warmup=0)


def measure(teacher_dir: Path, student_dir: Path, out: Path, frames: int = 32,
            repeats: int = 3, threads: tuple[int, ...] = (1, 2), utterance: int = 0,
            data_dir: str | None = None, seed: int = 0) -> dict:
    """Time the four methods at every thread count; write ``out/tradeoff.{json,png}``."""
    if frames < 2 or repeats < 1 or not threads or min(threads) < 1:
        raise ValueError(f"need --frames >= 2, --repeats >= 1 and positive --threads; got "
                         f"{frames}, {repeats}, {threads}")
    teacher, t_cfg, t_info = load_run(teacher_dir)
    if t_cfg.model.kind != "sequence_maf" or not t_cfg.model.cond_channels:
        raise ValueError(f"{teacher_dir}: the teacher must be a mel-conditioned sequence_maf "
                         f"run, got model.kind {t_cfg.model.kind}")
    vocoder, student, s_cfg, s_info = load_vocoder(student_dir)
    if s_cfg.data.mel != t_cfg.data.mel:
        raise ValueError(f"{student_dir} and {teacher_dir} use different log-mel settings; the "
                         "student must read the teacher's mels")
    audio, mel, file = clip_of_test_utterance(teacher_dir, t_cfg, data_dir, utterance, frames)
    rate, hop = t_cfg.data.mel.sample_rate, t_cfg.data.mel.hop_length
    z = input_noise(seed, 0, frames * hop, 1.0)[None]

    @torch.no_grad()
    def run(model: str, direction: str, n: int) -> torch.Tensor:
        m = mel[..., :n]
        if model == "teacher" and direction == "sampling":
            return stream_from_mel(teacher, m, rate, seed=seed, progress=False).audio
        if model == "student" and direction == "sampling":
            return vocoder(m, z[..., : n * hop])
        flow = teacher if model == "teacher" else student
        return flow.log_prob(audio[..., : n * hop], SequenceContext(m, None))

    load_start = os.getloadavg()
    rows = []
    for n_threads in threads:
        with intra_op_threads(n_threads) as used:
            for model, direction, kind in METHODS:
                times, result = timed_calls(lambda n, m=model, d=direction: run(m, d, n),
                                            frames, repeats)
                if not bool(torch.isfinite(result).all()):
                    raise ValueError(f"{model} {direction}: non-finite result on {file}")
                seconds = statistics.median(times)
                row = {"model": model, "direction": direction, "pass": kind, "threads": used,
                       "seconds": seconds, "times": times,
                       "rtf": seconds / (frames * hop / rate)}
                if kind == "streaming":
                    row["stream_threads"] = get_streaming_threads() or used
                if direction == "density":
                    row["nats_per_sample"] = float(result.sum()) / (frames * hop)
                rows.append(row)
                print(f"  {model} {direction} ({kind}), {used} thread(s): {seconds:.3f} s, "
                      f"RTF {row['rtf']:.4g}", flush=True)
    report = {
        "teacher": str(teacher_dir), "student": str(student_dir),
        "teacher_weights": t_info["weights"], "teacher_step": t_info["step"],
        "student_weights": s_info["weights"], "student_step": s_info["step"],
        "clip": {"file": file, "utterance": utterance, "frames": frames,
                 "samples": frames * hop, "seconds": frames * hop / rate,
                 "sample_rate": rate},
        "repeats": repeats, "warm_up": "one call on a two-frame clip before the timed calls",
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count(),
                    "load_average_start": load_start, "load_average_end": os.getloadavg(),
                    "torch": torch.__version__, "device": "cpu"},
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "tradeoff.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "tradeoff.png")
    return report


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def label(row: dict) -> str:
    return f"{row['model']} {row['direction']}\n({row['pass']})"


def plot(report: dict, path: Path) -> None:
    """Grouped bars of RTF per method (log scale), one bar per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    methods = list(dict.fromkeys(label(r) for r in rows))
    thread_counts = list(dict.fromkeys(r["threads"] for r in rows))
    width = 0.8 / len(thread_counts)
    fig, ax = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    for k, n in enumerate(thread_counts):
        values = [next(r["rtf"] for r in rows if label(r) == m and r["threads"] == n)
                  for m in methods]
        xs = [i + (k - (len(thread_counts) - 1) / 2) * width for i in range(len(methods))]
        bars = ax.bar(xs, values, width, label=f"{n} thread(s)")
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="real time")
    ax.set_yscale("log")
    ax.set_xticks(range(len(methods)), methods, fontsize=9)
    ax.set_ylabel("real-time factor (s per s of audio, log)")
    clip = report["clip"]
    ax.set_title(f"{clip['seconds']:.2f} s clip at {clip['sample_rate'] // 1000} kHz, CPU "
                 f"({report['machine']['cpu_count']} cores), median of {report['repeats']}")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict) -> str:
    lines = ["| model | direction | pass | threads | seconds | RTF |",
             "|---|---|---|---|---:|---:|"]
    for r in report["rows"]:
        threads = str(r["threads"])
        if "stream_threads" in r and r["stream_threads"] != r["threads"]:
            threads += f" (stream loop: {r['stream_threads']})"
        lines.append(f"| {r['model']} | {r['direction']} | {r['pass']} | {threads} | "
                     f"{r['seconds']:.3f} | {r['rtf']:.4g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", type=Path, help="sequence_maf speech run")
    parser.add_argument("student", type=Path, help="sequence_iaf speech run")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--frames", type=int, default=32,
                        help="clip length in mel frames (default 32: 0.512 s at hop 256, 16 kHz)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--utterance", type=int, default=0, help="index in the test split")
    parser.add_argument("--data", default=None, help="corpus root (default: the teacher's "
                                                     "data.path)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = measure(args.teacher, args.student, args.out, args.frames, args.repeats,
                     tuple(args.threads), args.utterance, args.data, args.seed)
    print(markdown(report))
    print(f"wrote {args.out / 'tradeoff.json'} and {args.out / 'tradeoff.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
