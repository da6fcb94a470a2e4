"""``seqflow export --onnx``: onnxruntime equals torch within 1e-4 on batches and lengths the
exporter never saw, through both exporters; the command checks, times and refuses."""

from __future__ import annotations

import json

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
    return {"corpus": corpus, "iaf": train_tiny(corpus, root / "iaf"),
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


def _export(runs, out, capsys, *extra):
    assert cli(["export", str(runs["iaf"]), "--onnx", str(out), "--exporter", "torchscript",
                "--repeats", "1", "--threads", "1", *extra]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def _runs_alone(path, runs):
    """onnxruntime output of the file at ``path`` (whatever sits beside it) on a random input."""
    vocoder, *_ = load_vocoder(runs["iaf"])
    generator = torch.Generator().manual_seed(1)
    mel = torch.randn(1, N_MELS, 6, generator=generator) - 4
    z = torch.randn(1, 1, 6 * HOP, generator=generator)
    with torch.no_grad():
        want = vocoder(mel, z).numpy()
    got = onnx_session(path, threads=1).run(None, {"mel": mel.numpy(), "z": z.numpy()})[0]
    return np.abs(got - want).max()


def check_one_file(runs, tmp_path, exporter: str) -> None:
    out = tmp_path / "student.onnx"
    export_vocoder(load_vocoder(runs["iaf"])[0], out, exporter)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.onnx"]
    alone = tmp_path / "copied" / "student.onnx"
    alone.parent.mkdir()
    alone.write_bytes(out.read_bytes())
    out.unlink()
    assert _runs_alone(alone, runs) <= 1e-4


def test_a_small_model_is_one_self_contained_file(runs, tmp_path):
    check_one_file(runs, tmp_path, "torchscript")


@pytest.mark.slow
def test_a_small_model_is_one_self_contained_file_through_dynamo(runs, tmp_path):
    check_one_file(runs, tmp_path, "dynamo")


def test_a_model_over_the_one_file_limit_names_both_files(runs, tmp_path, capsys,
                                                          monkeypatch):
    from seqflow.speech import export as export_module

    monkeypatch.setattr(export_module, "ONE_FILE_BYTES", 0)
    out = tmp_path / "student.onnx"
    line = _export(runs, out, capsys)
    data = tmp_path / "student.onnx.data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.onnx", "student.onnx.data"]
    assert f"wrote {out} and {data}" in line and "keep them together" in line
    assert _runs_alone(out, runs) <= 1e-4


def test_the_model_carries_its_audio_and_mel_settings_as_metadata(runs, tmp_path, capsys):
    import onnx

    from seqflow.train.config import load_config

    out = tmp_path / "student.onnx"
    _export(runs, out, capsys)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    cfg = load_config(runs["iaf"] / "config.yaml")
    mel = cfg.data.mel
    assert int(props["sample_rate"]) == mel.sample_rate == 16000
    assert int(props["hop_length"]) == mel.hop_length == HOP
    assert int(props["n_mels"]) == mel.n_mels == N_MELS
    assert int(props["n_fft"]) == mel.n_fft and int(props["win_length"]) == mel.win_length
    assert float(props["f_min"]) == mel.f_min and float(props["f_max"]) == mel.f_max
    assert float(props["log_floor"]) == mel.log_floor and props["window"] == mel.window
    assert json.loads(props["mel"]) == mel.to_dict()
    assert float(props["input_scale"]) == cfg.model.input_scale == 0.1
    assert "k / 32768" in props["audio_scale"] and "log" in props["mel_definition"]
    assert props["model_kind"] == "sequence_iaf" and int(props["step"]) == 1


def test_export_needs_only_the_run_directory(runs, tmp_path, capsys):
    corpus = runs["corpus"]
    away = corpus.with_name("corpus_moved_away")
    corpus.rename(away)
    try:
        out = tmp_path / "student.onnx"
        line = _export(runs, out, capsys)
    finally:
        away.rename(corpus)
    assert "onnxruntime equals torch within" in line
    assert "synthetic" in line and str(corpus) in line  # it says what it checked on, and why
    assert _runs_alone(out, runs) <= 1e-4


def test_an_onnx_path_below_a_file_is_refused_before_loading_the_run(runs, tmp_path, capsys,
                                                                      monkeypatch):
    from seqflow.speech import export as export_module

    def refuse(*args, **kwargs):
        raise AssertionError("loaded the run before checking --onnx")

    monkeypatch.setattr(export_module, "load_vocoder", refuse)
    blocker = tmp_path / "notes"
    blocker.write_text("a file where a folder would go")
    assert cli(["export", str(runs["iaf"]), "--onnx", str(blocker / "student.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0] and "not a folder" in err[0], err
