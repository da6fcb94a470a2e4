"""Collections of series: long-format and folder reading, windows drawn across series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from seqflow.data.timeseries import (
    CollectionWindows,
    future_inputs,
    read_collection,
    season_length,
)


def _write(path: Path, rows: list[str], header: str = "item_id,timestamp,target") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_long_format_items_keep_their_starts_lengths_and_gaps(tmp_path) -> None:
    path = _write(tmp_path / "long.csv", [
        "a,2021-01-01,1", "a,2021-01-02,", "a,2021-01-03,3",
        "b,2021-03-10,10", "b,2021-03-13,13",  # two missing days inserted
    ])
    c = read_collection(path)
    assert c.freq == "D" and c.item_ids == ("a", "b")
    assert c.lengths.tolist() == [3, 4]
    assert str(c.items[1].times[0])[:10] == "2021-03-10"
    np.testing.assert_array_equal(c.items[0].observed[:, 0], [True, False, True])
    np.testing.assert_array_equal(c.items[1].observed[:, 0], [True, False, False, True])
    assert np.isnan(c.items[1].values[1:3, 0]).all() and c.items[1].values[3, 0] == 13
    assert any("inserted 2 missing" in note for note in c.notes)


def test_unsorted_rows_are_sorted_and_said(tmp_path) -> None:
    path = _write(tmp_path / "long.csv", ["a,2021-01-03,3", "a,2021-01-01,1", "a,2021-01-02,2"])
    c = read_collection(path)
    assert c.items[0].values[:, 0].tolist() == [1, 2, 3]
    assert any("sorted by time" in note for note in c.notes)


def test_folder_of_csv_files_reads_like_the_long_format(tmp_path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    _write(folder / "a.csv", ["2021-01-01,1", "2021-02-01,2"], header="timestamp,target")
    _write(folder / "b.csv", ["2020-11-01,5", "2020-12-01,", "2021-01-01,7"],
           header="timestamp,target")
    long = _write(tmp_path / "long.csv", ["a,2021-01-01,1", "a,2021-02-01,2", "b,2020-11-01,5",
                                          "b,2020-12-01,", "b,2021-01-01,7"])
    from_folder, from_file = read_collection(folder), read_collection(long)
    assert from_folder.freq == from_file.freq == "MS" and from_folder.item_ids == ("a", "b")
    for x, y in zip(from_folder.items, from_file.items, strict=True):
        np.testing.assert_array_equal(x.times, y.times)
        np.testing.assert_array_equal(x.values, y.values)


def test_mixed_frequencies_are_refused_naming_the_item(tmp_path) -> None:
    path = _write(tmp_path / "long.csv", [
        "a,2021-01-01,1", "a,2021-01-02,2", "a,2021-01-03,3",
        "b,2021-01-01 00:00,1", "b,2021-01-01 01:00,2"])
    with pytest.raises(ValueError, match=r"item 'b' has frequency 'h'.*item 'a' has 'D'"):
        read_collection(path)
    two_days = _write(tmp_path / "two.csv", ["a,2021-01-01,1", "a,2021-01-03,2", "a,2021-01-05,3",
                                             "b,2021-01-01,1", "b,2021-01-04,2"])
    with pytest.raises(ValueError, match=r"item 'b' has frequency '3D'.*item 'a' has '2D'"):
        read_collection(two_days)


def test_duplicate_timestamp_within_an_item_is_refused(tmp_path) -> None:
    path = _write(tmp_path / "long.csv", ["a,2021-01-01,1", "b,2021-01-01,1", "a,2021-01-02,2",
                                          "a,2021-01-01,3"])
    with pytest.raises(ValueError, match=r"item 'a': line 5.*duplicate timestamp.*line 2"):
        read_collection(path)


def test_unnamed_columns_and_parquet_without_engine_are_refused(tmp_path, monkeypatch) -> None:
    path = _write(tmp_path / "long.csv", ["a,2021-01-01,1,0", "a,2021-01-02,1,0"],
                  header="item_id,timestamp,target,promo")
    with pytest.raises(ValueError, match="'promo' are neither"):
        read_collection(path)
    assert read_collection(path, covariates=["promo"]).covariate_names == ("promo",)
    parquet = tmp_path / "long.parquet"
    parquet.write_bytes(b"PAR1")
    import pandas as pd

    def no_engine(*args, **kwargs):  # what pandas raises where no parquet engine is installed
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(ValueError, match="pyarrow"):
        read_collection(parquet)


def _collection(tmp_path, lengths, freq="D") -> object:
    rows, rng = [], np.random.default_rng(0)
    for i, T in enumerate(lengths):
        start = np.datetime64("2020-01-01") + 3 * i
        for t in range(T):
            value = "" if rng.random() < 0.1 else f"{5 + i + math.sin(t):.3f}"
            rows.append(f"s{i},{start + t},{value}")
    return read_collection(_write(tmp_path / "c.csv", rows))


@pytest.mark.parametrize("weights", ["length", "uniform"])
def test_training_windows_are_spread_by_the_weights(tmp_path, weights) -> None:
    c = _collection(tmp_path, [40, 80, 200, 10])  # the last one is too short
    C, H = 8, 4
    windows = CollectionWindows(c, C, H, weights=weights, num_windows=4000, val_origins=1)
    drawn = np.array([windows.window_of(i) for i in range(len(windows))])
    starts = np.maximum(c.lengths - H - (C + H) + 1, 0)
    assert windows.left_out == ["s3"] and (drawn[:, 0] != 3).all()
    assert (drawn[:, 1] + C + H <= c.lengths[drawn[:, 0]] - H).all()  # before the val horizon
    p = starts / starts.sum() if weights == "length" else (starts > 0) / 3
    counts = np.bincount(drawn[:, 0], minlength=4)
    sd = np.sqrt(len(drawn) * p * (1 - p))
    assert np.all(np.abs(counts - len(drawn) * p) <= 4 * sd + 1e-9)


def test_window_values_match_a_direct_computation(tmp_path) -> None:
    c = _collection(tmp_path, [60, 50])
    C, H = 10, 5
    windows = CollectionWindows(c, C, H, split="val", val_origins=2, scaling="window",
                                item_ids=True)
    assert len(windows) == 4
    item = windows[3]
    series = c.items[1]
    start = series.length - 2 * H + H - C  # the second validation origin of item 1
    assert (int(item["item"]), int(item["start"])) == (1, start)
    raw = series.values[start:start + C + H, 0].astype(np.float64)
    seen = series.observed[start:start + C + H, 0]
    context = raw[:C][seen[:C]]
    loc, scale = context.mean(), context.std()
    x = item["x"][0].double().numpy()
    np.testing.assert_allclose(x[seen], (raw[seen] - loc) / scale, rtol=1e-5, atol=1e-5)
    batch = windows.__getitems__([3])
    local = batch["context"].local[0]
    assert batch["context"].global_ids.tolist() == [1]
    np.testing.assert_array_equal(batch["x"][0].numpy(), item["x"].numpy())
    assert local.shape == (len(c.feature_names()), C + H)
    np.testing.assert_array_equal(local[-1, :C].numpy(), seen[:C])
    assert (local[-1, C:] == 1).all()


def test_future_inputs_continue_each_series_and_refuse_short_history(tmp_path) -> None:
    path = _write(tmp_path / "m.csv", [f"a,2020-{m:02d}-01,{m}" for m in range(1, 13)]
                  + [f"b,2019-{m:02d}-01,{m}" for m in range(6, 13)])
    c = read_collection(path)
    assert c.freq == "MS" and season_length(c.freq) == 12
    inputs = future_inputs(c, 6, 3, "mean")
    assert [str(t)[:10] for t in inputs["times"][0]] == ["2021-01-01", "2021-02-01", "2021-03-01"]
    assert [str(t)[:10] for t in inputs["times"][1]] == ["2020-01-01", "2020-02-01", "2020-03-01"]
    assert inputs["history"].shape == (2, 1, 6) and inputs["local"].shape[-1] == 9
    # mean scaling: 1 + mean |x| of the last six months of item a
    assert float(inputs["scale"][0, 0]) == pytest.approx(1 + np.mean(np.arange(7, 13)))
    with pytest.raises(ValueError, match=r"item 'b' has 7 steps, shorter than .* context of 8"):
        future_inputs(c, 8, 3, "mean")


def test_a_parquet_table_reads_as_its_csv(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd

    csv = _write(tmp_path / "long.csv", ["a,2021-01-01,1.5", "a,2021-01-02,", "a,2021-01-03,2",
                                         "b,2021-01-02,-4", "b,2021-01-03,3.25"])
    frame = pd.read_csv(csv, parse_dates=["timestamp"])
    frame.to_parquet(tmp_path / "long.parquet")
    want, got = read_collection(csv), read_collection(tmp_path / "long.parquet")
    assert got.item_ids == want.item_ids and got.freq == want.freq
    for a, b in zip(got.items, want.items, strict=True):
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.observed, b.observed)
