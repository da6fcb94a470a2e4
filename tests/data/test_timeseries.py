"""Time-series data: CSV reading and its errors, gaps, filling, scaling, calendar, windows."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re

import numpy as np
import pytest
import torch

from seqflow.data.timeseries import (
    Scale,
    TrainingWindows,
    backtest_windows,
    calendar_feature_names,
    calendar_features,
    check_length,
    fill_missing,
    future_times,
    infer_frequency,
    mean_abs_scale,
    parse_freq,
    read_series_csv,
    same_frequency,
    series_from_array,
    standard_scale,
    time_grid,
    window_scale,
)


def write(tmp_path, text: str, name: str = "s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


HOURLY = "time,a,b,temp\n" + "".join(
    f"2021-03-01 {h:02d}:00:00,{h},{10 * h},{h % 3}\n" for h in range(6)
)


# --- reading ---------------------------------------------------------------------------------
def test_read_hourly_csv_values_and_times(tmp_path):
    s = read_series_csv(write(tmp_path, HOURLY), "time", ["a", "b"], "h", covariates=["temp"])
    assert s.values.dtype == np.float32 and s.values.shape == (6, 2)
    np.testing.assert_array_equal(s.values[:, 1], 10 * np.arange(6))
    np.testing.assert_array_equal(s.covariates[:, 0], np.arange(6) % 3)
    assert s.observed.all()
    assert s.times[0] == np.datetime64("2021-03-01T00:00") and s.times.dtype.kind == "M"
    assert (np.diff(s.times) == np.timedelta64(1, "h")).all()
    assert s.targets == ("a", "b") and s.covariate_names == ("temp",)


def test_missing_column_names_file_line_and_present_columns(tmp_path):
    path = write(tmp_path, HOURLY)
    with pytest.raises(ValueError) as err:
        read_series_csv(path, "time", ["a", "load"], "h")
    assert str(err.value) == (
        f"{path}: line 1: column 'load' not found; columns present: time, a, b, temp"
    )


def test_non_numeric_cell_names_line_and_column(tmp_path):
    text = HOURLY.replace("2021-03-01 02:00:00,2,20", "2021-03-01 02:00:00,2,twenty")
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        read_series_csv(path, "time", ["a", "b"], "h")
    # header is line 1, the hour-2 row is line 4
    assert str(err.value) == f"{path}: line 4, column 'b': cannot read 'twenty' as a number"


def test_unsorted_timestamps(tmp_path):
    rows = HOURLY.splitlines()
    rows[3], rows[4] = rows[4], rows[3]  # hour 3 before hour 2
    path = write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(ValueError) as err:
        read_series_csv(path, "time", ["a"], "h")
    assert str(err.value) == (
        f"{path}: line 5, column 'time': timestamp 2021-03-01T02:00:00.000000 is earlier than "
        "2021-03-01T03:00:00.000000 on line 4; rows must be sorted by time"
    )


def test_duplicate_timestamps(tmp_path):
    rows = HOURLY.splitlines()
    rows[4] = rows[4].replace("03:00:00", "02:00:00")
    path = write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(ValueError) as err:
        read_series_csv(path, "time", ["a"], "h")
    assert str(err.value) == (
        f"{path}: line 5, column 'time': duplicate timestamp 2021-03-01T02:00:00.000000 "
        "(already on line 4)"
    )


def test_two_rows_in_one_month_are_duplicates(tmp_path):
    path = write(tmp_path, "date,y\n2020-01-01,1\n2020-02-03,2\n2020-02-20,3\n")
    with pytest.raises(ValueError, match=r"line 4, column 'date': duplicate timestamp .* same "
                       r"month as 2020-02-03T00:00:00.000000 on line 3"):
        read_series_csv(path, "date", ["y"], "MS")


def test_off_grid_timestamp_and_bad_timestamp(tmp_path):
    path = write(tmp_path, "t,y\n2021-01-01 00:00,1\n2021-01-01 01:30,2\n")
    with pytest.raises(ValueError, match=r"line 3, column 't': timestamp 2021-01-01T01:30:00\.0+ "
                       r"is not on the 'h' grid that starts at"):
        read_series_csv(path, "t", ["y"], "h")
    path = write(tmp_path, "t,y\n2021-01-01,1\nyesterday,2\n", "bad.csv")
    with pytest.raises(ValueError, match=r"line 3, column 't': cannot read 'yesterday' as a"):
        read_series_csv(path, "t", ["y"], "D")
    path = write(tmp_path, "t,y\n2021-01-01T00:00+02:00,1\n", "tz.csv")
    with pytest.raises(ValueError, match=r"line 2, column 't': cannot read .* timestamp"):
        read_series_csv(path, "t", ["y"], "h")


def test_too_short_for_the_backtest(tmp_path):
    path = write(tmp_path, HOURLY)
    s = read_series_csv(path, "time", ["a"], "h")
    check_length(s, context=2, horizon=2, origins=2)  # 2 + 2 * 2 = 6 steps: just enough
    with pytest.raises(ValueError) as err:
        check_length(s, context=3, horizon=2, origins=2)
    assert str(err.value) == (
        f"{path}: 6 time steps is too short for context 3 + origins 2 x horizon 2 = 7"
    )


def test_gaps_are_inserted_unobserved_and_logged(tmp_path, caplog):
    rows = HOURLY.splitlines()
    del rows[3:5]  # hours 2 and 3
    path = write(tmp_path, "\n".join(rows) + "\n")
    with caplog.at_level(logging.INFO, logger="seqflow.data.timeseries"):
        s = read_series_csv(path, "time", ["a", "b"], "h", covariates=["temp"])
    assert "inserted 2 missing rows" in caplog.text and "first gap after line 3" in caplog.text
    expected = np.datetime64("2021-03-01T00:00") + np.arange(6) * np.timedelta64(1, "h")
    np.testing.assert_array_equal(s.times, expected)
    np.testing.assert_array_equal(s.observed[:, 0], [True, True, False, False, True, True])
    assert np.isnan(s.values[2:4]).all() and np.isnan(s.covariates[2:4]).all()
    np.testing.assert_array_equal(s.values[[0, 1, 4, 5], 0], [0, 1, 4, 5])


def test_empty_cells_are_missing_and_monthly_periods_start_their_month(tmp_path, caplog):
    path = write(tmp_path, "date,y\n1950-01-31,1\n1950-02-28,\n1950-04-30,NA\n")
    with caplog.at_level(logging.INFO, logger="seqflow.data.timeseries"):
        s = read_series_csv(path, "date", ["y"], "M")
    assert "inserted 1 missing rows" in caplog.text
    np.testing.assert_array_equal(
        s.times.astype("datetime64[D]"),
        np.array(["1950-01-01", "1950-02-01", "1950-03-01", "1950-04-01"], "datetime64[D]"),
    )
    np.testing.assert_array_equal(s.observed[:, 0], [True, False, False, False])


def test_weekly_grid_follows_the_first_timestamp(tmp_path):
    # Saturdays, as the Mauna Loa CO2 weeks; plain "W" accepts any weekday as the anchor.
    path = write(tmp_path, "d,y\n1958-03-29,1\n1958-04-05,2\n1958-04-19,3\n")
    s = read_series_csv(path, "d", ["y"], "W")
    assert s.length == 4 and s.times[2] == np.datetime64("1958-04-12")


DAILY = "date,y\n" + "".join(f"2021-01-{d:02d},{d}\n" for d in range(1, 29))


def test_a_frequency_finer_than_the_timestamps_is_refused_naming_both(tmp_path):
    """Daily rows read as hourly would leave 23 of every 24 grid steps missing."""
    path = write(tmp_path, DAILY)
    with pytest.raises(ValueError) as err:
        read_series_csv(path, "date", ["y"], "h")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: column 'date': ")
    assert "freq='h'" in message and "'D'" in message


def test_a_calendar_series_read_at_a_fixed_step_is_refused(tmp_path):
    path = write(tmp_path, "date,y\n2020-01-01,1\n2020-02-01,2\n2020-03-01,3\n")
    with pytest.raises(ValueError, match=r"column 'date': .*freq='D'.*'MS'"):
        read_series_csv(path, "date", ["y"], "D")


def test_the_frequency_is_inferred_when_not_given(tmp_path):
    s = read_series_csv(write(tmp_path, DAILY), "date", ["y"])
    assert s.freq == "D" and s.length == 28 and s.observed.all()
    months = write(tmp_path, "date,y\n1950-01-31,1\n1950-02-28,2\n1950-04-30,3\n", "m.csv")
    s = read_series_csv(months, "date", ["y"])
    assert s.frequency.unit == "M" and s.length == 4 and s.observed.sum() == 3


def test_an_agreeing_frequency_is_read_as_before(tmp_path):
    # Monthly rows on varying days of their months, quarterly rows opening no quarter,
    # and a plain weekly alias for Saturdays are all the frequency the timestamps show.
    path = write(tmp_path, "date,y\n2020-01-01,1\n2020-02-03,2\n2020-03-17,3\n")
    assert read_series_csv(path, "date", ["y"], "MS").length == 3
    path = write(tmp_path, "date,y\n1959-02-01,1\n1959-05-01,2\n1959-08-01,3\n", "q.csv")
    assert read_series_csv(path, "date", ["y"], "QS").length == 3
    path = write(tmp_path, "d,y\n1958-03-29,1\n1958-04-05,2\n", "w.csv")
    assert read_series_csv(path, "d", ["y"], "W").length == 2
    with pytest.raises(ValueError, match=r"freq='W-SUN'.*'W-SAT'"):
        read_series_csv(path, "d", ["y"], "W-SUN")


def test_an_inferred_frequency_that_leaves_most_of_the_grid_missing_is_refused(tmp_path):
    # gaps of 2 and 3 days: the only grid holding them is daily, and 4 of its 9 steps are rows
    path = write(tmp_path, "date,y\n2021-01-01,1\n2021-01-03,2\n2021-01-06,3\n2021-01-09,4\n")
    with pytest.raises(ValueError, match=r"column 'date': the inferred frequency 'D' leaves 5 "
                       r"of its 9 steps missing; give freq"):
        read_series_csv(path, "date", ["y"])
    assert read_series_csv(path, "date", ["y"], "D").observed.sum() == 4


def test_parse_freq_rejects_unknown_aliases():
    with pytest.raises(ValueError, match="freq='fortnight' is not a supported frequency"):
        parse_freq("fortnight")
    assert parse_freq("2h").step_us == 2 * 3600 * 10**6
    assert parse_freq("A").unit == "Y" and parse_freq("QS").unit == "Q"


def test_series_from_array_and_future_times():
    s = series_from_array(np.arange(6.0).reshape(3, 2), "2020-11-15", "MS")
    assert s.values.shape == (3, 2) and s.targets == ("y0", "y1")
    np.testing.assert_array_equal(
        future_times(s, 2).astype("datetime64[D]"),
        np.array(["2021-02-01", "2021-03-01"], "datetime64[D]"),
    )
    with pytest.raises(ValueError, match=r"values must be \(T,\) or \(T, D\)"):
        series_from_array(np.zeros((2, 2, 2)), "2020-01-01", "D")


# --- missing values and scaling --------------------------------------------------------------
def test_forward_fill_then_backward_fill_at_the_start():
    nan = np.nan
    v = np.array([[nan, 1.0], [2.0, nan], [nan, nan], [5.0, 4.0], [nan, nan]])
    filled = fill_missing(v, ~np.isnan(v))
    expected = np.array([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [5.0, 4.0], [5.0, 4.0]])
    np.testing.assert_array_equal(filled, expected)
    with pytest.raises(ValueError, match="column 1 has no observed value"):
        fill_missing(np.array([[1.0, nan]]), np.array([[True, False]]))


def test_mean_abs_scale_rule_and_round_trip():
    x = np.array([[2.0, -4.0, np.nan, 6.0], [np.nan, np.nan, np.nan, np.nan]])
    s = mean_abs_scale(x, ~np.isnan(x))
    np.testing.assert_allclose(s.scale, [1 + 12 / 3, 1.0])  # no observation: scale 1
    np.testing.assert_array_equal(s.loc, [0.0, 0.0])
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 7))
    for scale in (s, Scale(loc=np.array([3.0, -1.0]), scale=np.array([0.5, 4.0]))):
        np.testing.assert_allclose(scale.invert(scale.apply(y)), y)
        t = torch.from_numpy(y).T  # (time, D) with variables last
        back = scale.invert(scale.apply(t, var_axis=-1), var_axis=-1)
        torch.testing.assert_close(back, t)
    np.testing.assert_allclose(
        Scale(np.array([3.0, -1.0]), np.array([0.5, 4.0])).apply(np.ones((2, 1)))[:, 0],
        [(1 - 3) / 0.5, (1 + 1) / 4],
    )


def test_standard_scale_matches_numpy_on_observed_entries():
    v = np.array([[1.0, 5.0], [np.nan, 5.0], [3.0, 5.0], [100.0, 7.0]])
    s = standard_scale(v, ~np.isnan(v), train_end=3)
    np.testing.assert_allclose(s.loc, [2.0, 5.0])
    np.testing.assert_allclose(s.scale, [np.std([1.0, 3.0]), 1.0])  # constant -> 1


def seasonal_series(T: int = 120, D: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    values = 10 + 3 * np.sin(2 * np.pi * t / 24)[:, None] + rng.normal(size=(T, D))
    return values


def windows(values, split="train", scaling="mean", seed=0, **kw):
    s = series_from_array(values, "2021-01-01", "h")
    return TrainingWindows(
        s, context=24, horizon=8, seed=seed, scaling=scaling, origins=2, split=split, **kw
    )


def test_window_scale_standardizes_the_observed_context():
    rng = np.random.default_rng(1)
    x = 300.0 + rng.normal(size=(2, 50))
    x[0, 10] = np.nan
    s = window_scale(x, ~np.isnan(x))
    np.testing.assert_allclose(s.loc, np.nanmean(x, axis=1))
    np.testing.assert_allclose(s.scale, np.nanstd(x, axis=1))
    scaled = s.apply(x)
    np.testing.assert_allclose(np.nanmean(scaled, axis=1), 0.0, atol=1e-12)
    flat = window_scale(np.full((1, 5), 7.0), np.ones((1, 5), dtype=bool))
    np.testing.assert_allclose(flat.scale, [1e-3 * 8.0])  # the floor, not a division by 0
    empty = window_scale(np.full((1, 3), np.nan), np.zeros((1, 3), dtype=bool))
    assert (empty.loc[0], empty.scale[0]) == (0.0, 1.0)


@pytest.mark.parametrize("scaling", ["mean", "standard", "window"])
def test_items_map_back_to_the_series(scaling):
    values = seasonal_series()
    values[50, 0] = np.nan
    for split in ("train", "val", "test"):
        ds = windows(values, split=split, scaling=scaling, num_windows=30 if split == "train"
                     else None)
        for i in range(len(ds)):
            item = ds[i]
            assert item["x"].shape == (2, 32) and item["mask"].shape == (2, 32)
            assert item["context"].shape == (6 + 2, 32)  # hourly calendar 6 + 2 indicators
            assert item["x"].dtype == torch.float32 and item["mask"].dtype == torch.bool
            raw = values[item["start"] : item["start"] + 32].T
            back = item["x"].double() * item["scale"][:, None] + item["loc"][:, None]
            mask = item["mask"].numpy()
            np.testing.assert_array_equal(mask, ~np.isnan(raw))
            np.testing.assert_allclose(back.numpy()[mask], raw[mask], rtol=1e-5)
            if not mask.all():  # the missing entry holds the previous value
                d, t = np.argwhere(~mask)[0]
                assert back[d, t] == pytest.approx(raw[d, t - 1], rel=1e-5)
            if scaling == "mean":
                expected = 1 + np.nanmean(np.abs(raw[:, :24]), axis=1)
                np.testing.assert_allclose(item["scale"].numpy(), expected, rtol=1e-5)
            if scaling == "window":
                np.testing.assert_allclose(item["loc"].numpy(), np.nanmean(raw[:, :24], axis=1),
                                           rtol=1e-5)
                np.testing.assert_allclose(item["scale"].numpy(), np.nanstd(raw[:, :24], axis=1),
                                           rtol=1e-5)
            np.testing.assert_array_equal(item["context"][6:, :24].numpy(), mask[:, :24])
            assert (item["context"][6:, 24:] == 1).all()


def test_standard_scaling_uses_only_the_training_part():
    values = seasonal_series()
    first_origin = 120 - 2 * 8
    base = windows(values, scaling="standard")
    planted = values.copy()
    planted[first_origin, 0] = 1e6
    planted[-1, 1] = -1e6
    spiked = windows(planted, scaling="standard")
    for ds in (base, spiked):
        np.testing.assert_allclose(ds[0]["loc"].numpy(), values[:first_origin].mean(0), rtol=1e-6)
        np.testing.assert_allclose(ds[0]["scale"].numpy(), values[:first_origin].std(0),
                                   rtol=1e-6)
    planted[first_origin - 1, 0] = 1e6  # inside the training part: must change the statistics
    assert windows(planted, scaling="standard")[0]["loc"][0] > 1e3


@pytest.mark.parametrize("scaling", ["mean", "standard", "window"])
def test_training_and_validation_windows_never_read_the_test_part(scaling):
    values = seasonal_series()
    first_origin = 120 - 2 * 8
    values[first_origin:] = 1e6
    for split in ("train", "val"):
        ds = windows(values, split=split, scaling=scaling,
                     num_windows=400 if split == "train" else None)
        for i in range(len(ds)):
            item = ds[i]
            x = item["x"].double() * item["scale"][:, None] + item["loc"][:, None]
            assert x.abs().max() < 100 and item["scale"].max() < 100
    # training windows also stay clear of the validation horizon before the first origin
    values[first_origin - 8 :] = 1e6
    ds = windows(values, num_windows=400)
    starts = [ds[i]["start"] for i in range(len(ds))]
    assert max(starts) + 32 <= first_origin - 8
    assert max(ds[i]["x"].abs().max().item() * ds[i]["scale"].max().item()
               for i in range(len(ds))) < 100
    item = windows(values, split="test")[0]
    assert item["start"] == first_origin - 24
    assert (item["x"][:, 24:] * item["scale"][:, None] + item["loc"][:, None]).min() > 1e5


def test_window_draws_are_a_pure_function_of_seed_and_index():
    values = seasonal_series()
    a = windows(values, seed=3, num_windows=50)
    b = windows(values, seed=3, num_windows=50)
    order = list(range(50))[::-1]
    first = {i: a[i] for i in range(50)}
    for i in order:  # another access order gives the same items
        item = b[i]
        torch.testing.assert_close(item["x"], first[i]["x"])
        assert item["start"] == first[i]["start"]
    starts = {a[i]["start"] for i in range(50)}
    assert len(starts) > 20 and min(starts) >= 0 and max(starts) <= a.num_starts - 1
    other = windows(values, seed=4, num_windows=50)
    assert [other[i]["start"] for i in range(50)] != [a[i]["start"] for i in range(50)]
    with pytest.raises(IndexError):
        a[50]


def test_training_part_too_short_is_refused():
    with pytest.raises(ValueError, match=r"training part before step 28 is shorter than one "
                       r"window of context 24 \+ horizon 8 = 32"):
        TrainingWindows(series_from_array(np.ones(60), "2021-01-01", "h"), 24, 8,
                        origins=3, val_origins=1)


def test_backtest_origins_tile_the_end():
    origins = backtest_windows(T=50, context=10, horizon=7, origins=4)
    np.testing.assert_array_equal(origins, [22, 29, 36, 43])
    assert origins[-1] + 7 == 50 and (np.diff(origins) == 7).all()
    with pytest.raises(ValueError, match=re.escape("T=37 time steps is too short for context "
                                                   "10 + origins 4 x horizon 7 = 38")):
        backtest_windows(T=37, context=10, horizon=7, origins=4)


# --- calendar --------------------------------------------------------------------------------
def angle_pair(fraction: float) -> list[float]:
    return [math.sin(2 * math.pi * fraction), math.cos(2 * math.pi * fraction)]


def test_calendar_features_on_known_dates():
    # 2024-01-01 was a Monday; 2024 is a leap year (366 days).
    when = dt.datetime(2024, 3, 7, 13, 0)  # Thursday, day 67 of the year
    times = np.array([np.datetime64(when, "us"), np.datetime64("2024-01-01T00:00", "us")])
    hourly = calendar_features(times, "h")
    assert calendar_feature_names("h") == [
        "hour_of_day_sin", "hour_of_day_cos", "day_of_week_sin", "day_of_week_cos",
        "day_of_year_sin", "day_of_year_cos",
    ]  # fmt: skip
    weekday = when.weekday()  # Monday = 0 (independent of the module's arithmetic)
    yday = when.timetuple().tm_yday
    expected = angle_pair(13 / 24) + angle_pair(weekday / 7) + angle_pair((yday - 1) / 366)
    np.testing.assert_allclose(hourly[0], expected, atol=1e-6)
    np.testing.assert_allclose(hourly[1], [0, 1] * 3, atol=1e-6)  # midnight, Monday, Jan 1

    monthly = calendar_features(np.array(["2021-07-01"], "datetime64[us]"), "MS")
    np.testing.assert_allclose(monthly[0], angle_pair(6 / 12), atol=1e-6)
    quarterly = calendar_features(np.array(["1959-10-01"], "datetime64[us]"), "QS")
    np.testing.assert_allclose(quarterly[0], angle_pair(9 / 12), atol=1e-6)
    daily = calendar_features(np.array(["2023-12-31"], "datetime64[us]"), "D")
    np.testing.assert_allclose(daily[0], angle_pair(6 / 7) + angle_pair(364 / 365), atol=1e-6)
    assert calendar_features(np.array(["2001-01-01"], "datetime64[us]"), "YS").shape == (1, 0)
    assert calendar_features(np.array(["2001-01-01"], "datetime64[us]"), "W-SAT").shape == (1, 2)


@pytest.mark.parametrize(
    ("stamps", "alias"),
    [
        (["2020-01-01", "2020-01-02", "2020-01-05"], "D"),
        (["2024-01-01T00:00", "2024-01-01T00:30", "2024-01-01T02:00"], "30min"),
        (["2024-01-01T00", "2024-01-01T01", "2024-01-01T05"], "h"),
        (["2024-01-06", "2024-01-13", "2024-01-27"], "W-SAT"),
        (["2020-01-01", "2020-02-01", "2020-05-01"], "MS"),
        (["2020-01-31", "2020-02-29", "2020-03-31"], "MS"),
        (["1959-01-01", "1959-04-01", "1960-01-01"], "QS"),
        (["1959-02-01", "1959-05-01"], "3MS"),
        (["1990-01-01", "1992-01-01", "1993-01-01"], "YS"),
    ],
)
def test_infer_frequency_finds_the_coarsest_grid_holding_every_timestamp(stamps, alias):
    times = np.array(stamps, "datetime64[us]")
    found = infer_frequency(times)
    assert same_frequency(found, parse_freq(alias)), (found, alias)
    grid = time_grid(times[0], 400, found.alias)
    unit = "us" if found.fixed else "M"
    assert np.isin(times.astype(f"datetime64[{unit}]"), grid.astype(f"datetime64[{unit}]")).all()


def test_infer_frequency_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="from 1 timestamp"):
        infer_frequency(np.array(["2020-01-01"], "datetime64[us]"))
    with pytest.raises(ValueError, match="does not come after"):
        infer_frequency(np.array(["2020-01-02", "2020-01-01"], "datetime64[us]"))
