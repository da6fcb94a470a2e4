"""The ``seqflow`` command line: train -> eval -> sample on the moons config, and clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqflow import cli
from seqflow.distributions import StandardNormal
from seqflow.train.config import load_config
from seqflow.train.datasets import build_splits

ROOT = Path(__file__).resolve().parents[1]
MOONS = str(ROOT / "recipes/density/configs/moons.yaml")
SMALL = ["--set", "train.max_steps=60", "--set", "data.num_samples=2000", "--set",
         "train.eval_every=30", "--set", "train.checkpoint_every=30", "--set",
         "train.log_with=tensorboard", "--set", "model.steps=2", "--set", "train.log_every=10",
         "--set", "train.warmup_steps=5", "--set", "train.ema_decay=0.9", "--set", "train.lr=3e-3"]


def test_train_eval_sample_round_trip(tmp_path, capsys):
    run = tmp_path / "moons"
    assert cli.main(["train", MOONS, *SMALL, "--out", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "seqflow train: step 60, val NLL" in out
    assert "step/s" in err and "nll=" in err  # the tqdm progress bar with loss and throughput
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))

    assert cli.main(["eval", str(run), "--split", "test"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((run / "metrics_test.json").read_text())
    assert printed == written
    assert printed["split"] == "test" and printed["items"] == 200 and printed["step"] == 60
    assert printed["bits_per_dim"] == pytest.approx(printed["nll"] / 2 / np.log(2))
    test_rows = build_splits(load_config(run / "config.yaml"))["test"].rows
    base_nll = -StandardNormal(2).log_prob(test_rows).mean().item()
    assert printed["nll"] < base_nll - 0.2, (printed["nll"], base_nll)  # it learned something

    samples = tmp_path / "samples.npy"
    assert cli.main(["sample", str(run), "--num-samples", "64", "--out", str(samples)]) == 0
    array = np.load(samples)
    assert array.shape == (64, 2) and np.isfinite(array).all()

    # Training again into the same directory resumes (here: already finished).
    assert cli.main(["train", MOONS, *SMALL, "--out", str(run)]) == 0
    assert "resumed from step_00000060" in capsys.readouterr().out


def _one_line_error(capsys, argv, match):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"seqflow {argv[0]}: error: ") and match in err[0], err[0]


def test_config_errors_are_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["train", str(tmp_path / "nope.yaml")], "config file not found")
    not_yaml = tmp_path / "notes.yaml"
    not_yaml.write_text("model: [unclosed\n  - :\n")
    _one_line_error(capsys, ["train", str(not_yaml)], "is not valid YAML")
    _one_line_error(capsys, ["train", MOONS, "--set", "train.batch_size=big"],
                    "train.batch_size: expected int, got str 'big'")
    _one_line_error(capsys, ["train", MOONS, "--set", "train.max_step=1"],
                    "valid keys in 'train': max_steps, batch_size, lr")


def test_run_and_data_errors_are_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["eval", str(tmp_path)], "is not a seqflow run directory")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,oops\n")
    _one_line_error(capsys, ["train", MOONS, "--set", "data.source=csv", "--set",
                             f"data.path={bad}", "--out", str(tmp_path / "r")],
                    "bad.csv: line 2: non-numeric")



def test_missing_tensorboard_is_a_clear_error_not_a_silent_run(tmp_path, capsys, monkeypatch):
    from seqflow.train import engine

    monkeypatch.setattr(engine, "_tensorboard_installed", lambda: False)
    _one_line_error(capsys, ["train", MOONS, *SMALL, "--out", str(tmp_path / "r")],
                    "'tensorboard' package is not installed")
    assert not list(tmp_path.rglob("*.safetensors"))


def test_bench_passes_arguments_through(tmp_path, monkeypatch, capsys):
    script = tmp_path / "bench.py"
    script.write_text("import sys, pathlib\npathlib.Path(sys.argv[1]).write_text(' '.join("
                      "sys.argv[2:]))\nsys.exit(3)\n")
    monkeypatch.setattr(cli, "BENCH_SCRIPT", script)
    out = tmp_path / "args.txt"
    assert cli.main(["bench", str(out), "--quick", "-n", "2"]) == 3
    assert out.read_text() == "--quick -n 2"
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--help"]) == 3  # options go to the tool, not to seqflow
    assert (tmp_path / "--help").read_text() == ""
    monkeypatch.setattr(cli, "BENCH_SCRIPT", tmp_path / "missing.py")
    _one_line_error(capsys, ["bench"], "missing.py is missing")


def test_python_dash_m_exits_nonzero_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "seqflow", "train", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"seqflow train: error: config file not found: {tmp_path}/x.yaml"


@pytest.mark.parametrize("old", ["--num", "--num=4", "--num-sample"])
def test_sample_count_flag_is_num_samples_only(tmp_path, capsys, old):
    """``--num-samples`` is the one spelling: the old ``--num`` (and any other prefix) is
    argparse's unrecognized-argument error, not an abbreviation."""
    argv = ["sample", str(tmp_path), old, *([] if "=" in old else ["4"]), "--out",
            str(tmp_path / "s.npy")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_top_level_help_is_one_whole_sentence(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    description = " ".join(out.split("\n\n")[1].split())
    assert description.endswith("."), description
    for command in ("train", "eval", "sample", "vocode", "export", "bench"):
        assert command in description, (command, description)


@pytest.mark.parametrize("command", ["train", "vocode"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    run = tmp_path / "no_run_here"  # were the run read first, the error would name it
    argv = ([command, MOONS, "--out", str(taken)] if command == "train" else
            [command, str(run), "in.wav", "--out", str(taken)])
    _one_line_error(capsys, argv, f"--out {taken}: a file exists there, not a folder")
