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
from seqflow.train.registry import check_config


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
        check_config(config_from_dict(raw))  # the schema, then the registered names


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


def test_nested_sections_take_dotted_overrides_and_name_the_full_key():
    cfg = config_from_dict({"data": {"source": "audio", "path": "corpus"}},
                           ["data.mel.n_mels=64", "train.distill.kl_weight=0.5"])
    assert cfg.data.mel.n_mels == 64 and cfg.train.distill.kl_weight == 0.5
    with pytest.raises(ConfigError, match=r"data.mel.n_mels: expected int, got str 'many'"):
        config_from_dict({}, ["data.mel.n_mels=many"])
    with pytest.raises(ConfigError, match=r"unknown key 'data.mel.bands'; valid keys in "
                                          r"'data.mel': sample_rate"):
        config_from_dict({"data": {"mel": {"bands": 3}}})
    with pytest.raises(ConfigError, match=r"data.mel: MelConfig.win_length=2048 must be <= "
                                          r"n_fft=1024"):
        config_from_dict({"data": {"mel": {"win_length": 2048}}})


@pytest.mark.parametrize("old, new", [("data.n_mels", "data.mel.n_mels"),
                                      ("data.hop_length", "data.mel.hop_length"),
                                      ("train.distill_teacher", "train.distill.teacher"),
                                      ("train.anneal_steps", "train.variational.anneal_steps")])
def test_an_old_key_names_its_new_place(old, new):
    section, key = old.split(".")
    with pytest.raises(ConfigError, match=rf"^{old}: moved to {new}; write it there$"):
        config_from_dict({section: {key: 1}})


def test_audio_models_read_their_context_size_from_the_mel():
    cfg = config_from_dict({"data": {"source": "audio", "path": "c",
                                     "mel": {"n_mels": 40, "hop_length": 128}}})
    assert (cfg.model.cond_channels, cfg.model.upsample_factor) == (40, 128)
    same = config_from_dict({"model": {"cond_channels": 40}, "data": {
        "source": "audio", "path": "c", "mel": {"n_mels": 40, "hop_length": 128}}})
    assert same == cfg
    with pytest.raises(ConfigError, match=r"model.cond_channels=80 contradicts "
                                          r"data.mel.n_mels=40"):
        config_from_dict({"model": {"cond_channels": 80},
                          "data": {"source": "audio", "path": "c", "mel": {"n_mels": 40}}})
    unconditioned = config_from_dict({"model": {"cond_channels": 0},
                                      "data": {"source": "audio", "path": "c"}})
    assert (unconditioned.model.cond_channels, unconditioned.model.upsample_factor) == (0, 1)
    rows = config_from_dict({"data": {"source": "csv", "path": "rows.csv"}})
    assert (rows.model.cond_channels, rows.model.upsample_factor) == (0, 1)


def test_recipe_sections_load_with_the_engine_sections(tmp_path):
    from dataclasses import dataclass

    from seqflow.train.config import load_sections

    @dataclass
    class Windows:
        loss_on: str = "window"
        num_windows: int = 8

    path = tmp_path / "recipe.yaml"
    path.write_text("windows:\n  num_windows: 4\ntrain:\n  lr: 0.01\n")
    cfg, extra = load_sections(path, ["windows.loss_on=horizon", "train.max_steps=3"],
                               {"windows": Windows})
    assert extra["windows"] == Windows("horizon", 4)
    assert (cfg.train.lr, cfg.train.max_steps) == (0.01, 3)
    with pytest.raises(ConfigError, match=rf"^{path}: override .*windows.num_windows: expected"):
        load_sections(path, ["windows.num_windows=lots"], {"windows": Windows})
    with pytest.raises(ConfigError, match=r"unknown key 'windows.size'"):
        load_sections({"windows": {"size": 1}}, [], {"windows": Windows})
