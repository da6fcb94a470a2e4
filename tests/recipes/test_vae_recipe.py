"""The VAE recipe: quick mode end to end, its data readers, and the U1-U4 script."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import struct
import sys
from pathlib import Path

import pytest
import torch

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "vae"


def load(name: str):
    sys.path.insert(0, str(RECIPE))
    spec = importlib.util.spec_from_file_location(f"vae_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


QUICK = str(RECIPE / "configs" / "digits_quick.yaml")


def test_quick_mode_trains_every_posterior_and_writes_the_report(tmp_path):
    run = load("run")
    records = run.main(["--config", QUICK, "--out", str(tmp_path)])
    assert {r["posterior"] for r in records} == {"diag", "planar2", "radial2", "iaf2"}
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("elbo", "iwae", "kl"))
        assert r["kl"] >= -0.5  # a Monte Carlo rate: never far below zero
        # Same draws: log-mean-exp of the weights >= their mean (Jensen), image by image.
        assert all(i >= e - 1e-4 for i, e in zip(r["iwae_per_image"], r["elbo_k_per_image"],
                                                 strict=True))
        assert (tmp_path / "runs" / r["posterior"] / "seed0" / "checkpoints").is_dir()
    report = (tmp_path / "results.md").read_text()
    assert "| planar2 | planar, 2 layers |" in report and "Against the anchor" in report
    for png in ("results_reconstructions.png", "results_samples.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_reuses_results_and_refuses_other_settings(tmp_path):
    run = load("run")
    args = ["--config", QUICK, "--out", str(tmp_path), "--posteriors", "diag"]
    first = run.main(args)
    again = run.main(args)
    assert again[0]["reused"] and again[0]["iwae"] == first[0]["iwae"]
    changed = tmp_path / "changed.yaml"
    changed.write_text(Path(QUICK).read_text().replace("max_steps: 20", "max_steps: 21"))
    with pytest.raises(ValueError, match=r"other settings \(train\)"):
        run.main(["--config", str(changed), "--out", str(tmp_path), "--posteriors", "diag"])


def test_bad_recipe_configs_are_named(tmp_path):
    run = load("run")
    bad = tmp_path / "bad.yaml"
    bad.write_text("posteriors:\n  x: [gaussian, 1]\n")
    with pytest.raises(ValueError, match=r"posteriors.x must be \[kind, steps\]"):
        run.load_recipe(bad)
    bad.write_text("posteriors:\n  d: [diag, 0]\ntrain:\n  max_step: 3\n")
    with pytest.raises(ValueError, match="unknown key 'train.max_step'"):
        run.load_recipe(bad)


def _write_idx(path: Path, values: torch.Tensor) -> None:
    header = bytes([0, 0, 0x08, values.dim()]) + struct.pack(f">{values.dim()}i", *values.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + bytes(values.flatten().tolist()))


def test_idx_reader_follows_the_format_and_names_bad_files(tmp_path):
    data = load("data")
    values = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", values)
    assert data.read_idx(tmp_path / "a.gz").equal(values)
    with gzip.open(tmp_path / "short.gz", "wb") as handle:
        handle.write(bytes([0, 0, 8, 2]) + struct.pack(">2i", 2, 2) + bytes([1, 2, 3]))
    with pytest.raises(ValueError, match=r"short.gz: header declares shape \(2, 2\)"):
        data.read_idx(tmp_path / "short.gz")
    with gzip.open(tmp_path / "float.gz", "wb") as handle:
        handle.write(bytes([0, 0, 0x0D, 1]) + struct.pack(">i", 1) + bytes(4))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        data.read_idx(tmp_path / "float.gz")


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path):
    data = load("data")
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        data.load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package():
    images = load("data").load_fashion_mnist(val_size=5000)
    assert images.train.shape == (55_000, 784) and images.val.shape == (5000, 784)
    assert images.test.shape == (10_000, 784)
    assert 0 <= float(images.train.min()) and float(images.train.max()) == 1.0


def test_dynamic_binarization_draws_fresh_bernoulli_pixels():
    data = load("data")
    grey = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    dataset = data.DynamicBinarization(grey.expand(20_000, 4))
    torch.manual_seed(0)
    x = dataset.__getitems__(list(range(20_000)))["x"]
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(x.mean(0), grey[0], atol=0.015, rtol=0)
    first, second = dataset.__getitems__(list(range(100))), dataset.__getitems__(list(range(100)))
    assert not first["x"].equal(second["x"])  # the same images, drawn again


def test_potentials_match_the_papers_formulas_at_hand_computed_points():
    pot = load("potentials")
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0], [5.0, 0.0]], dtype=torch.float64)
    # U1 at (2, 0): ring term 0; -ln(1 + exp(-0.5 (4/0.6)^2)).
    assert float(pot.u1(z[:1])) == pytest.approx(-math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2)))
    # U2 at (1, 1): w1 = sin(pi/2) = 1, so U2 = 0; at (5, 0): w1 = sin(5 pi / 2) = 1 and the
    # wall adds ((5 - 4) / 0.2)^2 / 2.
    assert float(pot.u2(z[1:2])) == pytest.approx(0.0, abs=1e-12)
    assert float(pot.u2(z[3:])) == pytest.approx(0.5 / 0.16 + 12.5)
    # U3 at (0, 0): w1 = 0, w2 = 3 exp(-0.5 / 0.36).
    w2 = 3 * math.exp(-0.5 / 0.36)
    expected = -math.log(1 + math.exp(-0.5 * (w2 / 0.35) ** 2))
    assert float(pot.u3(z[2:3])) == pytest.approx(expected)
    # U4 at (1, 1): w1 = 1, w3 = 3 sigmoid(0) = 1.5.
    expected = -math.log(1 + math.exp(-0.5 * (1.5 / 0.35) ** 2))
    assert float(pot.u4(z[1:2])) == pytest.approx(expected)


def test_potentials_script_quick_mode(tmp_path):
    pot = load("potentials")
    records = pot.main(["--quick", "--out", str(tmp_path), "--targets", "U1", "U2",
                        "--flows", "planar K=2", "IAF 4 layers"])
    assert len(records) == 4
    assert all(math.isfinite(r["kl"]) and r["kl"] > -3 * r["kl_se"] - 0.05 for r in records)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["log_z"]) == {"U1", "U2"}
    assert (tmp_path / "vi_potentials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| U2 |" in (tmp_path / "results.md").read_text()
