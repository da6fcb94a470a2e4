"""recipes/timeseries/report.py: metrics files of one series merge into one table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "timeseries" / "report.py"
spec = importlib.util.spec_from_file_location("timeseries_report", RECIPE)
report = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = report
spec.loader.exec_module(report)


def metrics(crps: float, **extra) -> dict:
    return {"crps": crps, "normalized_crps": crps / 10, "mase": 1.0, "coverage_50": 0.5,
            "coverage_90": 0.9, **extra}


def write(path: Path, models: dict, targets=("y",)) -> Path:
    path.write_text(json.dumps({"series": "data/sun.csv", "targets": list(targets),
                                "context": 6, "horizon": 2, "origins": 3, "num_samples": 10,
                                "season": 1, "models": models}))
    return path


def test_one_table_per_series_forecasters_first_lowest_crps_in_bold(tmp_path):
    a = write(tmp_path / "a.json", {"seqflow-wavenet": metrics(2.0, train_seconds=5,
                                                                sample_seconds=0.5),
                                    "ets": metrics(1.5, seconds=0.2)})
    b = write(tmp_path / "b.json", {"seqflow-lstm": metrics(3.0, train_seconds=7,
                                                             sample_seconds=0.7)})
    text = report.main([str(a), str(b)])
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows] == ["| model", "| seqflow-wavenet",
                                                 "| seqflow-lstm", "| ets"]  # ours first
    assert "| ets | **1.5** |" in text and "CRPS-sum" not in text
    with pytest.raises(ValueError, match="already in"):
        report.main([str(a), str(a)])
