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


def test_a_multivariate_table_leads_with_the_variable_averaged_crps(tmp_path):
    def multi(headline: float, pooled: float, **extra) -> dict:
        return {"variable_averaged_crps": headline, "crps_sum": 0.1, "energy_score": 2.0,
                "mase": 1.0, "coverage_50": 0.5, "coverage_90": 0.9,
                "normalized_crps_mixed_units": pooled, **extra}

    a = write(tmp_path / "a.json", {"seqflow-lstm": multi(0.2, 0.05, train_seconds=5,
                                                           sample_seconds=0.5),
                                    "ets": multi(0.3, 0.01, seconds=0.2)},
              targets=("load", "price"))
    text = report.main([str(a)])
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert header.startswith("| model | nCRPS var-avg | CRPS-sum | energy |")
    assert "mixed units" in header
    assert "| seqflow-lstm | **0.2** |" in text  # bold by the headline, not the pooled figure
