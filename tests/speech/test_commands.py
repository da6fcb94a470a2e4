"""``seqflow sample --mel-from`` and ``seqflow eval --data`` on tiny speech runs: outputs are
checked before any work, results of different data folders never overwrite each other, and the
one-line refusals name the file, the value and the way out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from speech_runs import HOP, SR, tiny_config, train_tiny, write_corpus

from seqflow.cli import main as cli
from seqflow.data.features import LogMel
from seqflow.speech import sample as sample_module
from seqflow.speech.audio_io import mel_of_audio_file


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("commands")
    corpus = write_corpus(root / "corpus")
    return {"corpus": corpus, "iaf": train_tiny(corpus, root / "iaf"),
            "maf": train_tiny(corpus, root / "maf", "sequence_maf")}


@pytest.fixture
def no_streaming(monkeypatch):
    """Streaming fails the test: a refusal must come before any waveform is drawn."""
    def refuse(*args, **kwargs):
        raise AssertionError("streamed a waveform before checking --out")

    monkeypatch.setattr(sample_module, "stream_from_mel", refuse)


def one_line_error(capsys, argv, *parts):
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"seqflow {argv[0]}: error: "), err[0]
    for part in parts:
        assert part in err[0], (part, err[0])
    return err[0]


def test_sample_refuses_a_non_wav_out_before_streaming(runs, tmp_path, capsys, no_streaming):
    out = tmp_path / "teacher.mp3"
    one_line_error(capsys, ["sample", str(runs["maf"]), "--mel-from",
                            str(runs["corpus"] / "utt00.wav"), "--out", str(out)],
                   str(out), "'.mp3'", ".wav")
    assert not out.exists()


def test_sample_refuses_an_out_below_a_file_before_streaming(runs, tmp_path, capsys,
                                                             no_streaming):
    blocker = tmp_path / "notes"
    blocker.write_text("a file where a folder would go")
    out = blocker / "teacher.wav"
    one_line_error(capsys, ["sample", str(runs["maf"]), "--mel-from",
                            str(runs["corpus"] / "utt00.wav"), "--out", str(out)],
                   str(blocker), "not a folder")


def test_sample_creates_a_missing_folder_and_writes_the_wav_and_png(runs, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "teacher.wav"
    wav = runs["corpus"] / "utt01.wav"  # 0.30 s
    assert cli(["sample", str(runs["maf"]), "--mel-from", str(wav), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert str(out) in line and str(out.with_suffix(".png")) in line
    audio, rate = sf.read(out)
    assert rate == SR and audio.shape == (sf.info(wav).frames // HOP * HOP,)
    assert np.isfinite(audio).all() and out.with_suffix(".png").stat().st_size > 0


def test_sample_of_vectors_refuses_an_unknown_format_before_loading(runs, tmp_path, capsys):
    out = tmp_path / "samples.txt"
    one_line_error(capsys, ["sample", str(runs["iaf"]), "--num-samples", "2", "--out",
                            str(out)], str(out), ".npy, .csv or .safetensors")


def test_sample_of_a_one_pass_run_points_to_vocode(runs, tmp_path, capsys):
    one_line_error(capsys, ["sample", str(runs["iaf"]), "--num-samples", "2", "--out",
                            str(tmp_path / "x.npy")], "seqflow vocode", "--mel-from")


def test_a_too_short_wav_is_reported_with_its_length_and_the_minimum(runs, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(short, np.full(100, 0.1), SR, subtype="PCM_16")
    one_line_error(capsys, ["sample", str(runs["maf"]), "--mel-from", str(short), "--out",
                            str(tmp_path / "o.wav")], str(short), "100 samples", "minimum 256")
    # the stated minimum is the true one: 256 samples give a log-mel, 255 are refused
    logmel = LogMel(tiny_config(runs["corpus"], "sequence_maf").data.mel)
    for length, ok in ((256, True), (255, False)):
        sf.write(short, np.full(length, 0.1), SR, subtype="PCM_16")
        if ok:
            assert mel_of_audio_file(short, logmel)[1].shape[-1] == length // HOP
        else:
            with pytest.raises(ValueError, match=f"{length} samples"):
                mel_of_audio_file(short, logmel)


def _copy_files(corpus, names, folder):
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes((corpus / name).read_bytes())
    return folder


def test_eval_data_of_two_folders_with_one_name_keeps_both_results(runs, tmp_path, capsys):
    first = _copy_files(runs["corpus"], ["utt00.wav", "utt01.wav"], tmp_path / "a" / "clips")
    second = _copy_files(runs["corpus"], ["utt02.wav", "utt03.wav", "utt04.wav"],
                         tmp_path / "b" / "clips")
    run = runs["maf"]
    written = []
    for folder in (first, second):
        before = set(run.glob("metrics_*.json"))
        assert cli(["eval", str(run), "--data", str(folder)]) == 0
        out = capsys.readouterr().out
        new = set(run.glob("metrics_*.json")) - before
        assert len(new) == 1, (new, out)
        written.append(new.pop())
        assert str(written[-1]) in out and "clips" in written[-1].name
    metrics = [json.loads(path.read_text()) for path in written]
    assert [m["utterances"] for m in metrics] == [2, 3]
    assert [m["data"] for m in metrics] == [str(first.resolve()), str(second.resolve())]
    assert all(m["split"] is None for m in metrics)


def test_eval_data_with_a_split_is_refused(runs, tmp_path, capsys):
    folder = _copy_files(runs["corpus"], ["utt00.wav"], tmp_path / "clips")
    one_line_error(capsys, ["eval", str(runs["maf"]), "--data", str(folder), "--split", "val"],
                   "--split", "--data")
