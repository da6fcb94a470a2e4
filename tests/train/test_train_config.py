"""Config validation: typed sections, dotted overrides, clear errors."""

from __future__ import annotations

import pytest

from seqflow.train.config import (
    ConfigError,
    config_from_dict,
    load_config,
    save_config,
    valid_keys,
)


def test_defaults_and_required_keys_exist():
    keys = valid_keys()
    for key in ("train.max_steps", "train.batch_size", "train.lr", "train.seed",
                "train.checkpoint_every", "train.eval_every"):
        assert key in keys
    cfg = config_from_dict({})
    assert cfg.train.max_steps > 0 and cfg.model.kind in ("maf", "realnvp", "glow")


def test_overrides_are_typed_and_dotted():
    cfg = config_from_dict({"train": {"lr": 1}}, ["train.max_steps=7", "train.lr=3e-4",
                                                  "model.kind=glow", "train.progress=false"])
    assert cfg.train.max_steps == 7 and isinstance(cfg.train.max_steps, int)
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.model.kind == "glow" and cfg.train.progress is False
    assert config_from_dict({"train": {"lr": 2}}).train.lr == 2.0  # int accepted as float


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"train": {"max_step": 10}})
    message = str(err.value)
    assert "train.max_step" in message
    for key in ("max_steps", "batch_size", "lr", "seed", "checkpoint_every", "eval_every"):
        assert key in message
    with pytest.raises(ConfigError, match="unknown section 'trian'.*train.max_steps"):
        config_from_dict({"trian": {}})
    with pytest.raises(ConfigError, match="unknown key 'train.nope'"):
        config_from_dict({}, ["train.nope=1"])


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"train": {"max_steps": "ten"}}, r"train.max_steps: expected int, got str 'ten'"),
        ({"train": {"max_steps": 2.5}}, r"train.max_steps: expected int, got float"),
        ({"train": {"batch_size": True}}, r"train.batch_size: expected int, got bool"),
        ({"train": {"lr": "fast"}}, r"train.lr: expected float, got str 'fast'"),
        ({"train": {"max_steps": 0}}, r"train.max_steps: must be > 0"),
        ({"model": {"kind": "vae"}}, r"model.kind: 'vae' is not one of maf, realnvp, glow"),
        ({"data": {"val_fraction": 0.6, "test_fraction": 0.5}}, r"val_fraction \+"),
        ({"data": {"source": "csv"}}, r"data.path: required"),
        ({"train": []}, r"section 'train' must be a mapping"),
    ],
)
def test_bad_values_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        config_from_dict({}, ["train.lr"])
    with pytest.raises(ConfigError, match="dotted"):
        config_from_dict({}, ["lr=1"])


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {max_steps: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a sentence\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(scalar)
    typed = tmp_path / "typed.yaml"
    typed.write_text("train:\n  seed: abc\n")
    with pytest.raises(ConfigError, match=r"typed.yaml: train.seed: expected int"):
        load_config(typed)


def test_save_load_round_trip(tmp_path):
    cfg = config_from_dict({"model": {"kind": "glow", "steps": 3}}, ["train.lr=0.01"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_shipped_moons_config_is_valid():
    cfg = load_config("recipes/density/configs/moons.yaml")
    assert cfg.data.name == "moons" and cfg.model.features == 2
