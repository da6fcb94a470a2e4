"""Data for the engine: seeded splits, sharded batches, and errors that name file and row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqflow.train.batches import DeterministicBatches as ShardedBatches
from seqflow.train.batches import shard_range
from seqflow.train.config import config_from_dict
from seqflow.train.datasets import build_splits, split_rows


def DataConfig(features: int = 2, **data):  # noqa: N802 - reads like the dataclass it wraps
    """A whole config whose data section is ``data`` (the registry builds from both)."""
    return config_from_dict({"model": {"features": features}, "data": data})


def test_splits_are_disjoint_complete_and_seeded():
    parts = split_rows(1000, 0.1, 0.2, seed=3)
    everything = torch.cat([parts["train"], parts["val"], parts["test"]])
    assert torch.equal(everything.sort().values, torch.arange(1000))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [700, 100, 200]
    again = split_rows(1000, 0.1, 0.2, seed=3)
    assert all(torch.equal(parts[s], again[s]) for s in parts)
    assert not torch.equal(parts["train"], split_rows(1000, 0.1, 0.2, seed=4)["train"])


@pytest.mark.parametrize("world", [2, 3])
def test_shards_do_not_overlap_and_match_one_process(world):
    b, rows = 4, 50
    ranks = [ShardedBatches(rows, b, world, r, seed=0) for r in range(world)]
    single = ShardedBatches(rows, b * world, 1, 0, seed=0)
    per_epoch = rows // (b * world)
    for k in range(3 * per_epoch):  # several epochs
        parts = [r.indices(k) for r in ranks]
        union = torch.cat(parts)
        assert len(set(union.tolist())) == b * world  # no overlap within a step
        assert torch.equal(union, single.indices(k))
    epoch = torch.cat([torch.cat([r.indices(k) for r in ranks]) for k in range(per_epoch)])
    assert len(set(epoch.tolist())) == per_epoch * b * world  # no row twice in an epoch
    assert not torch.equal(ranks[0].indices(0), ranks[0].indices(per_epoch))  # reshuffled


def test_batches_are_a_function_of_the_step():
    a = ShardedBatches(100, 8, 1, 0, seed=5)
    b = ShardedBatches(100, 8, 1, 0, seed=5)
    late = [a.indices(k) for k in range(30)]
    assert torch.equal(b.indices(29), late[29]) and torch.equal(b.indices(3), late[3])


def test_too_small_train_split():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ShardedBatches(10, 8, 2, 0, seed=0)


def test_eval_shards_cover_every_row_once():
    rows = torch.cat([shard_range(11, 3, r) for r in range(3)])
    assert torch.equal(rows, torch.arange(11))


def test_toy_source_and_row_map():
    splits = build_splits(DataConfig(num_samples=200, val_fraction=0.1, test_fraction=0.1))
    data, source_rows = splits["train"].rows, splits["train"].source_rows
    assert data.shape == (160, 2) and source_rows.shape == (160,)
    batch = splits["train"].__getitems__([3, 5])
    assert torch.equal(batch["x"], data[[3, 5]]) and torch.equal(batch["index"],
                                                                  source_rows[[3, 5]])
    with pytest.raises(ValueError, match="model.features=3"):
        build_splits(DataConfig(3, num_samples=200))


def test_csv_errors_name_file_and_line(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b\n" + "".join(f"{i},{2 * i}\n" for i in range(20)))
    splits = build_splits(DataConfig(source="csv", path=str(good)))
    assert sum(len(s) for s in splits.values()) == 20
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 2: non-numeric"):
        build_splits(DataConfig(source="csv", path=str(bad)))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3,4\n5\n")
    with pytest.raises(ValueError,
                       match=r"ragged.csv: line 3: expected 2 comma-separated columns, got 1"):
        build_splits(DataConfig(source="csv", path=str(ragged)))
    nan = tmp_path / "nan.csv"
    nan.write_text("# a comment line\n1,2\n3,4\n5,nan\n6,inf\n")
    with pytest.raises(ValueError, match=r"nan.csv: 2 non-finite .* file lines affected: 4, 5"):
        build_splits(DataConfig(source="csv", path=str(nan)))
    with pytest.raises(ValueError, match="file not found: .*none.csv"):
        build_splits(DataConfig(source="csv", path=str(tmp_path / "none.csv")))


def test_npy_is_read_without_pickle(tmp_path):
    good = tmp_path / "x.npy"
    np.save(good, np.ones((10, 2), dtype=np.float64))
    assert build_splits(DataConfig(source="npy", path=str(good)))["train"].rows.dtype \
        == torch.float32
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npy") as err:
        build_splits(DataConfig(source="npy", path=str(objects)))
    assert "allow_pickle" not in str(err.value)


def test_csv_with_another_separator_says_which_was_expected(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1;2\n3;4\n")
    with pytest.raises(ValueError, match=r"semi.csv: line 2: .*expected comma-separated"):
        build_splits(DataConfig(source="csv", path=str(semi)))
