"""``seqflow export --onnx``: onnxruntime equals torch within 1e-4 on batches and lengths the
exporter never saw, through both exporters; the command checks, times and refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from speech_runs import HOP, N_MELS, train_tiny, write_corpus

from seqflow.cli import main as cli
from seqflow.speech.export import export_vocoder, onnx_session
from seqflow.speech.vocoder import load_vocoder

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    corpus = write_corpus(root / "corpus")
    return {"iaf": train_tiny(corpus, root / "iaf"),
            "maf": train_tiny(corpus, root / "maf", "sequence_maf")}


def check_against_torch(runs, tmp_path, exporter: str) -> None:
    vocoder, *_ = load_vocoder(runs["iaf"])
    path = tmp_path / "vocoder.onnx"
    export_vocoder(vocoder, path, exporter, example_frames=8)
    session = onnx_session(path, threads=1)
    generator = torch.Generator().manual_seed(0)
    for batch, frames in ((1, 5), (3, 13)):  # the example had batch 2 and 8 frames
        mel = torch.randn(batch, N_MELS, frames, generator=generator) - 4
        z = torch.randn(batch, 1, frames * HOP, generator=generator)
        with torch.no_grad():
            want = vocoder(mel, z).numpy()
        got = session.run(None, {"mel": mel.numpy(), "z": z.numpy()})[0]
        assert got.shape == (batch, 1, frames * HOP)
        assert np.abs(got - want).max() <= 1e-4
        assert np.abs(want - 0.1 * z.numpy()).max() > 1e-3  # not the initial z / 10


def test_torchscript_export_equals_torch_on_unseen_batches_and_lengths(runs, tmp_path):
    check_against_torch(runs, tmp_path, "torchscript")


@pytest.mark.slow
def test_dynamo_export_equals_torch_on_unseen_batches_and_lengths(runs, tmp_path):
    check_against_torch(runs, tmp_path, "dynamo")


def test_the_command_checks_the_file_and_reports_both_speeds(runs, tmp_path, capsys):
    out = tmp_path / "student.onnx"
    assert cli(["export", str(runs["iaf"]), "--onnx", str(out), "--exporter", "torchscript",
                "--repeats", "1", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.stat().st_size > 1000
    assert "onnxruntime equals torch within" in line and "on 1 thread(s): torch" in line


def test_a_maf_run_and_a_wrong_suffix_are_refused(runs, tmp_path, capsys):
    assert cli(["export", str(runs["maf"]), "--onnx", str(tmp_path / "t.onnx")]) == 2
    assert "seqflow sample" in capsys.readouterr().err
    assert cli(["export", str(runs["iaf"]), "--onnx", str(tmp_path / "t.pt")]) == 2
    assert "expected a .onnx file" in capsys.readouterr().err
