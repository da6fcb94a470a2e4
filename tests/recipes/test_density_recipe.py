"""The density recipe runs end to end in quick mode, and its baselines are right."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "density"


def load(name: str):
    sys.path.insert(0, str(RECIPE))
    spec = importlib.util.spec_from_file_location(f"density_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_quick_run_is_finite_and_maf_beats_the_gaussian_on_two_moons(tmp_path):
    compare = load("compare")
    results = compare.main(["--quick", "--out", str(tmp_path)])
    assert {r["model"] for r in results} == {"gaussian", "maf"}
    assert all(math.isfinite(r["test"]) for r in results)
    test = {r["model"]: r["test"] for r in results}
    assert test["maf"] > test["gaussian"] + 0.1
    report = (tmp_path / "results.md").read_text()
    assert "| maf |" in report and "density_moons.png" in report
    assert (tmp_path / "density_moons.png").stat().st_size > 1000
    run = tmp_path / "runs" / "moons" / "maf" / "seed0"
    assert (run / "CALLER_FLOW").is_file() and (run / "result.json").is_file()  # via the engine


def test_rerun_reuses_finished_results_resumes_unfinished_and_refuses_other_settings(tmp_path):
    compare = load("compare")
    first = {r["model"]: r for r in compare.main(["--quick", "--out", str(tmp_path),
                                                  "--no-plots"])}
    again = {r["model"]: r for r in compare.main(["--quick", "--out", str(tmp_path),
                                                  "--no-plots"])}
    assert again["maf"]["reused"] and again["maf"]["test"] == first["maf"]["test"]
    # A run killed before writing result.json resumes from its checkpoint (here the last one).
    (tmp_path / "runs" / "moons" / "maf" / "seed0" / "result.json").unlink()
    resumed = {r["model"]: r for r in compare.main(["--quick", "--out", str(tmp_path),
                                                    "--no-plots"])}
    assert resumed["maf"]["resumed"] and not resumed["maf"].get("reused")
    assert resumed["maf"]["test"] == pytest.approx(first["maf"]["test"], abs=1e-6)
    done = tmp_path / "runs" / "moons" / "maf" / "seed0" / "result.json"
    record = json.loads(done.read_text())
    for section in ("distill", "variational"):  # settings the likelihood task never reads
        del record["engine_train"][section]
    done.write_text(json.dumps(record))
    kept = {r["model"]: r for r in compare.main(["--quick", "--out", str(tmp_path), "--no-plots"])}
    assert kept["maf"]["reused"]
    with pytest.raises(ValueError, match=r"other settings \(max_steps\)"):
        compare.main(["--quick", "--steps", "200", "--out", str(tmp_path), "--no-plots"])


def test_full_covariance_gaussian_matches_torch_distributions():
    baselines = load("baselines")
    x = torch.randn(500, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]])
    model = baselines.FullCovGaussian(3).fit(x)
    x64 = x.double()
    ref = torch.distributions.MultivariateNormal(
        x64.mean(0), covariance_matrix=torch.cov(x64.T, correction=0)
    ).log_prob(x64)
    torch.testing.assert_close(model.log_prob(x).double(), ref, rtol=1e-4, atol=1e-4)


def test_kde_is_normalized_and_picks_a_sensible_bandwidth():
    baselines = load("baselines")
    gen = torch.Generator().manual_seed(0)
    train, val = torch.randn(400, 1, generator=gen), torch.randn(400, 1, generator=gen)
    kde = baselines.GaussianKDE(1)
    bandwidth = kde.fit(train, val)
    assert 0.05 < bandwidth < 1.5
    grid = torch.linspace(-8, 8, 4001)[:, None]
    mass = kde.log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0])
    assert abs(float(mass) - 1) < 1e-3


def test_digits_split_and_uci_errors(tmp_path):
    from seqflow.data.tabular import DIGITS_ALPHA, load_digits_split, load_uci

    split = load_digits_split(seed=0)
    assert split.train.shape[1] == 64
    assert len(split.train) + len(split.val) + len(split.test) == 1797
    bound = math.log((1 - DIGITS_ALPHA) / DIGITS_ALPHA)
    assert split.train.abs().max() <= bound + 1e-5
    with pytest.raises(FileNotFoundError, match="hepmass/1000_train.csv"):
        load_uci("hepmass", tmp_path)
    with pytest.raises(ValueError, match="unknown UCI set"):
        load_uci("mnist", tmp_path)


def test_uci_miniboone_preprocessing_on_a_synthetic_file(tmp_path):
    import numpy as np

    from seqflow.data.tabular import load_uci

    (tmp_path / "miniboone").mkdir()
    data = np.random.RandomState(0).randn(1000, 43) * 3 + 1
    np.save(tmp_path / "miniboone" / "data.npy", data)
    split = load_uci("miniboone", tmp_path)
    assert (len(split.train), len(split.val), len(split.test)) == (810, 90, 100)
    both = torch.cat([split.train, split.val]).double()
    torch.testing.assert_close(both.mean(0), torch.zeros(43, dtype=torch.float64), atol=1e-5,
                               rtol=0)


def test_uci_power_drops_two_columns_and_standardizes(tmp_path):
    import numpy as np

    from seqflow.data.tabular import load_uci

    (tmp_path / "power").mkdir()
    rng = np.random.RandomState(1)
    # The paper's file: 7 measurements + time of day; D = 6 after dropping two columns.
    np.save(tmp_path / "power" / "data.npy", np.round(rng.rand(2000, 8) * 50, 1))
    split = load_uci("power", tmp_path)
    assert split.features == 6
    assert (len(split.train), len(split.val), len(split.test)) == (1620, 180, 200)
    both = torch.cat([split.train, split.val]).double()
    torch.testing.assert_close(both.std(0, correction=0), torch.ones(6, dtype=torch.float64),
                               atol=1e-4, rtol=0)
