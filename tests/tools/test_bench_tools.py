"""The benchmark tools run end to end at tiny sizes and check their own results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sequence_benchmark_tiny_run(tmp_path):
    out_json, out_png = tmp_path / "seq.json", tmp_path / "seq.png"
    cmd = [sys.executable, str(ROOT / "tools/bench.py"), "sequences", "--lengths", "48", "96",
           "--batches", "1", "2", "--residual", "4", "--layers", "3", "--waveglow-steps", "2",
           "--waveglow-layers", "2", "--repeats", "1", "--repeats-slow", "1",
           "--naive-steps", "4", "--json", str(out_json), "--plot", str(out_png)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| T | batch | MAF log_prob |" in done.stdout
    rows = json.loads(out_json.read_text())["sequences"]["rows"]
    assert [(r["length"], r["batch"]) for r in rows] == [(48, 1), (96, 1), (48, 2), (96, 2)]
    for row in rows:
        assert row["naive_measured"] == "full"  # tiny: the naive path runs in full
        assert row["max_abs_diff_stream_vs_naive"] < 1e-4  # streamed == naive samples
        assert all(v > 0 for k, v in row.items() if k.endswith("_s"))
    assert out_png.stat().st_size > 10_000


def test_speed_sections_tiny_run(tmp_path):
    """The streaming-step, one-pass and vector-stack sections run and report what they claim."""
    seq = [sys.executable, str(ROOT / "tools/bench_sequences.py"), "--residual", "4", "--layers",
           "3", "--repeats", "1", "--repeats-slow", "1"]
    out = tmp_path / "stream.json"
    done = subprocess.run([*seq, "--section", "stream", "--stream-batches", "1", "2",
                           "--stream-steps", "16", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    # 4 residual channels, 3 blocks, kernel 2: counted by hand from the layer shapes.
    per_block = 4 * 8 + 4 * 8 + 4 * 4  # past tap, current tap, skip 1x1
    assert report["flops_per_step_per_sample"] == 2 * (4 + 3 * per_block + 2 * 16 + 16 + 8)
    assert {(r["batch"], r["mode"], r["process_threads"]) for r in report["rows"]} == {
        (b, m, t) for b in (1, 2) for m in ("auto", "eager") for t in (1, 2)}
    assert all(r["us_per_step"] > 0 and 0 < r["matmul_fraction"] for r in report["rows"])
    out = tmp_path / "one_pass.json"
    done = subprocess.run([*seq, "--section", "one-pass", "--batches", "1", "--one-pass-lengths",
                           "300", "3000", "--whole-max-values", "1000", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["length"], r["variant"]) for r in rows] == [(300, "chunked"), (300, "whole"),
                                                           (3000, "chunked")]
    assert all(r["peak_bytes"] >= 0 and r["samples_per_s"] > 0 for r in rows)


def test_one_pass_section_without_chunking_skips_what_does_not_fit(monkeypatch):
    """In a tree without chunking only the whole pass exists: it runs up to the value cap and
    longer sequences are left out rather than run unchunked."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import bench_sequences

    monkeypatch.setattr(bench_sequences, "chunk_values", None)
    monkeypatch.setattr(bench_sequences, "measure_peak", lambda *a: 0.0)
    args = bench_sequences.argparse.Namespace(
        residual=4, layers=3, batches=[1, 2], one_pass_lengths=[300, 3000],
        whole_max_values=1000, repeats=1)
    rows = bench_sequences.bench_one_pass(args)
    assert [(r["batch"], r["length"], r["variant"]) for r in rows] == [(1, 300, "whole"),
                                                                       (2, 300, "whole")]


def test_general_step_benchmark_tiny_run(tmp_path):
    """tools/ab/general_step.py: every row says which path it measured, and the paths are the
    ones docs/benchmarks.md names (a compiled kernel for every auto stream at these batches)."""
    out_json = tmp_path / "general.json"
    cmd = [sys.executable, str(ROOT / "tools/ab/general_step.py"), "--rounds", "1", "--steps",
           "8", "--batches", "1", "--json", str(out_json)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out_json.read_text())["rows"]
    paths = {(r["conditioner"], r["channels"], r["mode"]): r["path"] for r in rows}
    assert paths == {("wavenet", 1, "auto"): "kernel", ("wavenet", 1, "eager"): "general",
                     ("wavenet", 4, "auto"): "kernel", ("wavenet", 12, "auto"): "kernel",
                     ("lstm", 1, "auto"): "kernel", ("lstm", 4, "auto"): "kernel"}
    assert all(r["us_per_step"] > 0 and len(r["us_per_step_rounds"]) == 1 for r in rows)
