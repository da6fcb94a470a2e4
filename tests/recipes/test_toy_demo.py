"""The `make demo` job runs end to end on a tiny budget and writes its plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from seqflow.data import sample_toy

ROOT = Path(__file__).resolve().parents[2]


def _load_demo():
    spec = importlib.util.spec_from_file_location("toy_demo", ROOT / "recipes/density/toy_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_runs_and_writes_png(tmp_path, capsys):
    _load_demo().main(["--steps", "30", "--blocks", "2", "--batch-size", "64",
                       "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "test NLL" in out
    png = tmp_path / "density.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["moons", "8gaussians", "checkerboard", "pinwheel"])
def test_toy_sets_are_deterministic_and_bounded(name):
    a, b = sample_toy(name, 500, seed=3), sample_toy(name, 500, seed=3)
    assert a.shape == (500, 2) and a.equal(b)
    assert a.abs().max() < 6 and not sample_toy(name, 500, seed=4).equal(a)


def test_unknown_toy_set_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        sample_toy("spirals", 10)
