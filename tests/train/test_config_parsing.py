"""Config parsing on real files: error positions, duplicate keys, non-finite numbers, and the
record of hyper-parameters changed on resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import seqflow
from seqflow.train import config as config_mod
from seqflow.train.config import ConfigError, config_from_dict, load_config, save_config

REPO = Path(seqflow.__file__).resolve().parents[1]


def _position(message: str, path: Path) -> tuple[int, int]:
    match = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): ", message)
    assert match, message
    return int(match.group(1)), int(match.group(2))


def test_syntax_errors_report_line_and_column(tmp_path):
    path = tmp_path / "colon.yaml"
    lines = ["model:", "  kind: maf", "train:", "  lr: fast: 0.1"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and "mapping values are not allowed" in message
    # the scanner stops at the second ':' of line 4 (1-based line and column)
    assert _position(message, path) == (4, lines[3].index(": 0.1") + 1)

    tabbed = tmp_path / "tab.yaml"
    tabbed.write_text("train:\n  max_steps: 5\n\tlr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(tabbed)
    assert "\n" not in str(err.value)
    assert _position(str(err.value), tabbed) == (3, 1)


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("train:\n  lr: 0.1\n  max_steps: 5\n  lr: 0.2\n", "lr", 4, 2),
        ("train:\n  lr: 0.1\nmodel:\n  kind: maf\ntrain:\n  max_steps: 3\n", "train", 5, 1),
        ("train: {lr: 0.1, max_steps: 5, max_steps: 6}\n", "max_steps", 1, 1),
    ],
)
def test_duplicate_keys_are_refused(tmp_path, text, key, line, first):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and f"duplicate key '{key}'" in message
    assert _position(message, path)[0] == line
    assert f"line {first}" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  lr: .inf\n", "train.lr"),
        ("train:\n  lr: inf\n", "train.lr"),
        ("train:\n  grad_clip: .nan\n", "train.grad_clip"),
        ("train:\n  weight_decay: .Inf\n", "train.weight_decay"),
        ("train:\n  input_noise: NaN\n", "train.input_noise"),
    ],
)
def test_non_finite_numbers_in_a_file_are_refused(tmp_path, text, key):
    path = tmp_path / "nonfinite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert f"{key}: must be a finite number" in message


@pytest.mark.parametrize("override", ["train.lr=.inf", "train.grad_clip=.nan",
                                      "train.grad_clip=nan", "train.weight_decay=-.inf"])
def test_non_finite_overrides_are_refused(tmp_path, override):
    path = tmp_path / "ok.yaml"
    path.write_text("train:\n  max_steps: 5\n")
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    message = str(err.value)
    assert str(path) in message and override in message
    assert f"{key}: must be a finite number" in message
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: must be a finite number"):
        config_from_dict({}, [override])


def test_cli_refuses_a_non_finite_override_before_training(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"num_samples": 200},
        "train": {"max_steps": 1, "batch_size": 16, "log_with": "none", "progress": False},
    }))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "seqflow", "train", str(config), "--out", str(out),
         "--set", "train.grad_clip=.nan"],
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(config) in lines[0] and "train.grad_clip: must be a finite number" in lines[0]
    assert not (out / "checkpoints").exists()


def test_diff_configs_lists_changed_dotted_keys():
    old = {"model": {"kind": "maf", "layers": 4},
           "train": {"lr": 1e-3, "max_steps": 10, "progress": True, "grad_clip": 5.0}}
    new = {"model": {"kind": "maf", "layers": 4, "hidden": 64},
           "train": {"lr": 3e-4, "max_steps": 10, "progress": 1, "grad_clip": 5}}
    # hidden added, lr changed, a bool replaced by an int; 5.0 -> 5 is the same number
    assert config_mod.diff_configs(old, new) == ["model.hidden", "train.lr", "train.progress"]
    assert config_mod.diff_configs(new, new) == []
    assert config_mod.diff_configs({"data": {"seed": 0}}, {}) == ["data.seed"]


def test_record_config_change_appends_and_keeps_the_previous_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    first = config_from_dict({"train": {"lr": 1e-3, "max_steps": 100}})
    save_config(first, run / "config.yaml")
    old = config_mod.config_to_dict(first)
    second = config_mod.config_to_dict(config_from_dict({"train": {"lr": 3e-4,
                                                                   "max_steps": 200}}))

    assert config_mod.record_config_change(run, old, old, step=20) == []
    assert not (run / "config_changes.jsonl").exists()

    assert config_mod.record_config_change(run, old, second, step=20) == [
        "train.lr", "train.max_steps"]
    kept = run / "config.step_20.yaml"
    assert load_config(kept) == first
    entries = [json.loads(line) for line in (run / "config_changes.jsonl").read_text()
               .splitlines()]
    assert len(entries) == 1 and entries[0]["step"] == 20
    assert entries[0]["changed"] == {"train.lr": {"old": 1e-3, "new": 3e-4},
                                     "train.max_steps": {"old": 100, "new": 200}}

    # a second resume at the same step: logged, and the config that trained up to it is kept
    third = {**second, "train": {**second["train"], "lr": 1e-4}}
    assert config_mod.record_config_change(run, second, third, step=20) == ["train.lr"]
    assert load_config(kept) == first
    lines = (run / "config_changes.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["changed"] == {
        "train.lr": {"old": 3e-4, "new": 1e-4}}
