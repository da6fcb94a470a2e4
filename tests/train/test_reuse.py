"""Reusing finished work only when it was made with what is asked for now."""

import json

import pytest

from seqflow.train import config_from_dict, finished_run, reusable_result, train

RAW = {"model": {"kind": "maf", "features": 2, "steps": 1, "hidden_features": 8},
       "data": {"source": "toy", "name": "moons", "num_samples": 200},
       "train": {"max_steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2,
                 "log_every": 1, "log_with": "none", "progress": False, "cpu_threads": 1}}


def test_a_finished_run_is_reused_only_for_the_same_config(tmp_path):
    cfg = config_from_dict(RAW)
    out = tmp_path / "run"
    assert not finished_run(out, cfg)  # nothing there: train
    train(cfg, out)
    assert finished_run(out, cfg)
    other = config_from_dict(RAW, ["train.lr=0.01", "data.seed=3"])
    with pytest.raises(ValueError, match=r"holds a finished run of another config "
                                         r"\(data.seed, train.lr\); delete it"):
        finished_run(out, other)


def test_a_saved_result_is_reused_only_with_the_same_settings(tmp_path):
    path = tmp_path / "result.json"
    assert reusable_result(path, {"lr": 0.1}) is None
    path.write_text(json.dumps({"record": {"nll": 1.5}, "settings": {"lr": 0.1, "steps": 5}}))
    assert reusable_result(path, {"lr": 0.1, "steps": 5})["record"] == {"nll": 1.5}
    with pytest.raises(ValueError, match=r"made with other settings \(lr, seed\)"):
        reusable_result(path, {"lr": 0.2, "steps": 5, "seed": 1})
