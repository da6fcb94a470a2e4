"""Forecasting data preparation: the statsmodels series and the hourly power averaging."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqflow.data.timeseries import read_series_csv

pytest.importorskip("statsmodels")
import statsmodels.api as sm  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "timeseries"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"timeseries_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


prepare = load("prepare")


def test_statsmodels_series_are_written_as_the_reader_sees_them(tmp_path):
    names = ["sunspots", "co2", "elnino", "macrodata"]
    manifest = prepare.prepare(names, tmp_path, tmp_path / "cache")
    assert {n: manifest[n]["length"] for n in names} == {
        "sunspots": 309, "co2": 2284, "elnino": 61 * 12, "macrodata": 203,
    }  # fmt: skip
    co2 = sm.datasets.co2.load_pandas().data["co2"]
    assert manifest["co2"]["missing"] == int(co2.isna().sum()) > 0

    elnino = read_series_csv(tmp_path / "elnino.csv", "date", ["sst"], "MS")
    table = sm.datasets.elnino.load_pandas().data
    row = table.index[table["YEAR"] == 1951][0]
    march_1951 = np.flatnonzero(elnino.times == np.datetime64("1951-03-01"))[0]
    assert elnino.values[march_1951, 0] == pytest.approx(table.loc[row, "MAR"])

    macro = read_series_csv(tmp_path / "macrodata.csv", "date", manifest["macrodata"]["targets"],
                            "QS")  # fmt: skip
    assert macro.num_variables == 12 and "year" not in macro.targets
    source = sm.datasets.macrodata.load_pandas().data
    q3_1959 = np.flatnonzero(macro.times == np.datetime64("1959-07-01"))[0]
    assert macro.values[q3_1959, 0] == pytest.approx(source["realgdp"][2])

    before = {n: (tmp_path / f"{n}.csv").stat().st_mtime_ns for n in names}
    prepare.prepare(names, tmp_path, tmp_path / "cache")  # reuses the finished files
    assert before == {n: (tmp_path / f"{n}.csv").stat().st_mtime_ns for n in names}


def test_hourly_means_drop_day_copied_minutes_and_partial_edge_hours():
    index = pd.date_range("2020-01-01 00:30", "2020-01-03 23:59", freq="min")
    rng = np.random.default_rng(0)
    minutes = pd.DataFrame(rng.normal(size=(len(index), 2)), index=index, columns=["a", "b"])
    day = 1440
    copy_hour = minutes.index.get_loc(pd.Timestamp("2020-01-03 05:00"))
    minutes.iloc[copy_hour : copy_hour + 60] = minutes.iloc[copy_hour - day : copy_hour - day + 60]
    one = minutes.index.get_loc(pd.Timestamp("2020-01-03 07:10"))  # a single copied minute
    minutes.iloc[one] = minutes.iloc[one - day]
    hourly, notes = prepare.hourly_means(minutes)
    assert notes == {"copied_minutes": 61}
    assert hourly.index[0] == pd.Timestamp("2020-01-01 01:00")  # 00:30-00:59 is partial
    assert hourly.index[-1] == pd.Timestamp("2020-01-03 23:00")
    assert hourly.loc["2020-01-03 05:00"].isna().all()
    seven = minutes.loc["2020-01-03 07:00":"2020-01-03 07:59"]
    seven = seven.drop(pd.Timestamp("2020-01-03 07:10"))
    np.testing.assert_allclose(hourly.loc["2020-01-03 07:00"], seven.mean())
    np.testing.assert_allclose(hourly.loc["2020-01-02 05:00"],
                               minutes.loc["2020-01-02 05:00":"2020-01-02 05:59"].mean())
