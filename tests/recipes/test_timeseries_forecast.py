"""recipes/timeseries/forecast.py end to end on a tiny CSV: outputs, units, no look-ahead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # three runs of the command, each a few seconds

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "timeseries" / "forecast.py"
C, H, K, N = 12, 3, 4, 16
TINY = ["--set", "train.max_steps=6", "--set", "train.batch_size=8",
        "--set", "train.eval_every=3", "--set", "windows.num_windows=32",
        "--set", "model.blocks=2", "--set", "model.residual_channels=4",
        "--set", "model.skip_channels=4"]


def write_csv(path: Path, values: np.ndarray) -> None:
    months = np.datetime64("2000-01", "M") + np.arange(len(values))
    lines = ["month,load,price"]
    for m, (a, b) in zip(months, values, strict=True):
        lines.append(f"{m}-01,{'' if np.isnan(a) else a},{b}")
    path.write_text("\n".join(lines) + "\n")


def series(T: int = 72) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(T)
    values = np.stack([20 + 5 * np.sin(2 * np.pi * t / 12), 3 + 0.02 * t], axis=1)
    values = values + 0.3 * rng.normal(size=values.shape)
    values[40, 0] = np.nan  # a gap in the training part
    values[T - 2, 0] = np.nan  # a missing target in the last test window
    return values


def forecast(csv: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(SCRIPT), "--csv", str(csv), "--time-column", "month",
               "--target", "load,price", "--freq", "MS", "--context", str(C), "--horizon",
               str(H), "--origins", str(K), "--num-samples", str(N), "--out", str(out),
               "--config", str(ROOT / "recipes/timeseries/configs/wavenet.yaml"),
               "--baselines", "seasonal_naive", *TINY, *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    values = series()
    write_csv(folder / "tiny.csv", values)
    done = forecast(folder / "tiny.csv", folder / "out")
    assert done.returncode == 0, done.stderr
    return values, folder / "out", done.stdout


def test_writes_forecasts_targets_metrics_and_a_fan_chart(clean):
    values, out, stdout = clean
    samples = np.load(out / "forecasts.npy")
    targets = np.load(out / "targets.npy")
    assert samples.shape == (K, N, H, 2) and np.isfinite(samples).all()
    np.testing.assert_allclose(targets.reshape(-1, 2), values[-K * H:], rtol=1e-6)
    assert np.isnan(targets[-1, 1, 0])  # the missing target stays missing
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"seqflow-wavenet", "seasonal_naive"}
    ours = metrics["models"]["seqflow-wavenet"]
    for key in ("variable_averaged_crps", "mase", "coverage_50", "coverage_90", "crps_sum",
                "energy_score", "crps_mixed_units", "normalized_crps_mixed_units",
                "train_seconds", "sample_seconds"):
        assert np.isfinite(ours[key]), key
    assert "crps" not in ours and "normalized_crps" not in ours  # mixed units: labelled so
    assert ours["variable_averaged_crps"] == np.mean(ours["crps_per_variable"])
    assert "nCRPS var-avg" in stdout and "nCRPS mixed" in stdout
    assert metrics["config"]["model"]["channels"] == 2
    assert metrics["config"]["model"]["cond_channels"] == 2 + 2  # month sin/cos + 2 flags
    assert metrics["features"] == ["month_of_year_sin", "month_of_year_cos",
                                   "observed_load", "observed_price"]
    assert (out / "fan_chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "baselines" / "seasonal_naive.npy").is_file()
    assert "seqflow-wavenet" in stdout and "deepar" not in metrics["models"]


def test_nothing_at_or_after_the_first_origin_changes_its_forecast(clean, tmp_path):
    """Training reads only steps before the first origin, and origin 0 sees the C before it:
    a spike over its whole horizon leaves the trained model and its paths bit-identical."""
    values, out, _ = clean
    spiked = values.copy()
    first = len(values) - K * H
    spiked[first:first + H] = 1e4
    write_csv(tmp_path / "tiny.csv", spiked)
    done = forecast(tmp_path / "tiny.csv", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    before, after = np.load(out / "forecasts.npy"), np.load(tmp_path / "out" / "forecasts.npy")
    np.testing.assert_array_equal(before[0], after[0])
    assert np.abs(before[1] - after[1]).max() > 1.0  # origin 1 sees the spike in its context
    naive = [np.load(d / "baselines" / "seasonal_naive.npy") for d in (out, tmp_path / "out")]
    np.testing.assert_array_equal(naive[0][0], naive[1][0])


def test_bad_input_is_one_line_naming_the_column(tmp_path):
    write_csv(tmp_path / "tiny.csv", series())
    done = forecast(tmp_path / "tiny.csv", tmp_path / "out", "--set", "model.channels=3")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "forecast.py: --set model.channels: set by the recipe from the data"]


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("timeseries_forecast", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def arguments(csv: Path, out: Path, *extra: str) -> list[str]:
    return ["--csv", str(csv), "--time-column", "month", "--target", "load,price", "--freq", "MS",
            "--context", str(C), "--horizon", str(H), "--origins", str(K), "--num-samples",
            str(N), "--out", str(out), "--config",
            str(ROOT / "recipes/timeseries/configs/wavenet.yaml"), "--baselines", *TINY, *extra]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_reused_out_with_other_data_or_windows_is_refused(tmp_path, monkeypatch):
    """A second series, context or window setting into the same --out must not resume the
    first run (whose best weights were chosen on another series' validation NLL)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # baselines.py beside the script
    module = load_script()
    write_csv(tmp_path / "a.csv", series())
    write_csv(tmp_path / "b.csv", 2 * series())
    out = tmp_path / "out"
    first = module.main(arguments(tmp_path / "a.csv", out))
    for csv, extra, named in [(tmp_path / "b.csv", [], "csv_sha256"),
                              (tmp_path / "a.csv", ["--context", str(C - 2)], "context"),
                              (tmp_path / "a.csv", ["--set", "windows.scaling=mean"],
                               "windows.scaling")]:
        with pytest.raises(ValueError) as err:
            module.main([*arguments(csv, out), *extra])
        message = str(err.value)
        assert "\n" not in message and named in message and "--out" in message, message
    again = module.main(arguments(tmp_path / "a.csv", out))  # the same settings reuse the run
    ours = "seqflow-wavenet"
    assert again["models"][ours]["resumed_from"] is not None
    np.testing.assert_array_equal(again["models"][ours]["variable_averaged_crps"],
                                  first["models"][ours]["variable_averaged_crps"])


def test_a_run_without_recorded_settings_is_not_reused(tmp_path):
    module = load_script()
    run = tmp_path / "out" / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: {}\n")  # a run of unknown data
    with pytest.raises(ValueError, match=r"holds a run without forecast_settings\.json.*--out"):
        module.claim_run(run, {"context": 4})
    fresh = tmp_path / "new" / "run"
    module.claim_run(fresh, {"context": 4})
    module.claim_run(fresh, {"context": 4})  # the same settings: reused
    with pytest.raises(ValueError, match=r"other settings \(context\)"):
        module.claim_run(fresh, {"context": 5})
    with pytest.raises(ValueError, match=r"is not a folder"):
        (tmp_path / "file").write_text("")
        module.check_out(tmp_path / "file")


def test_a_frequency_that_contradicts_the_timestamps_is_refused_before_training(tmp_path):
    """Monthly rows read as daily would leave about 97 % of the grid missing."""
    write_csv(tmp_path / "tiny.csv", series())
    done = forecast(tmp_path / "tiny.csv", tmp_path / "out", "--freq", "D")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "tiny.csv") in lines[0], done.stderr
    assert "freq='D'" in lines[0] and "'MS'" in lines[0], lines[0]
    assert not (tmp_path / "out" / "run").exists()


def test_the_sample_count_flag_is_num_samples(capsys):
    module = load_script()
    common = ["--csv", "x.csv", "--time-column", "t", "--target", "y", "--freq", "MS",
              "--context", "4", "--horizon", "2", "--origins", "1", "--out", "o"]
    assert module.parse_args([*common, "--num-samples", "3"]).num_samples == 3
    with pytest.raises(SystemExit):
        module.parse_args([*common, "--samples", "3"])
    assert "--num-samples" in capsys.readouterr().err  # argparse names the required flag
