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
