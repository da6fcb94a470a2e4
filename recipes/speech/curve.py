"""Plot a speech run's training curve (log-likelihood in nats/sample) next to the baselines.

    python recipes/speech/curve.py runs/teacher_cpu docs/results/speech_curve.png

Reads ``RUN/train_log.jsonl`` (training windows and validation segments) and, when present,
``RUN/baselines_test.json`` and ``RUN/metrics_test.json`` (whole test utterances, drawn as
horizontal lines and a final point).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("png")
    args = parser.parse_args(argv)
    run = Path(args.run)
    records = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    train = [(r["step"], -r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], -r["val_nats_per_dim"]) for r in records if "val_nats_per_dim" in r]

    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    ax.plot(*zip(*train, strict=True), lw=0.8, alpha=0.6,
            label="training segments (10-step means)")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation segments")
    baselines = run / "baselines_test.json"
    if baselines.is_file():
        rows = json.loads(baselines.read_text())["rows"]
        for row in rows:
            if row["model"].startswith(("iid", "lpc-32", "adaptive-lpc-32")):
                ax.axhline(row["nats_per_sample"], ls="--", lw=1, color="gray")
                ax.text(train[0][0], row["nats_per_sample"], f" {row['model']} (test)",
                        va="bottom", fontsize=8, color="gray")
    metrics = run / "metrics_test.json"
    if metrics.is_file():
        final = json.loads(metrics.read_text())
        ax.plot([final["step"]], [final["nats_per_sample"]], "r*", ms=12,
                label=f"teacher, whole test utterances ({final['nats_per_sample']:.3f})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("log-likelihood (nats/sample, [-1, 1) audio, dequantized)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{run.name}: training curve")
    fig.savefig(args.png, dpi=100)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
