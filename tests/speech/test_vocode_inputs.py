"""What ``seqflow vocode`` does with inputs that are not what the run was trained on: other rates
and channel counts, floats beyond [-1, 1), truncated files, mels in other units, and silent or
clipped audio. Each is refused in one line naming the file and the value, or done, printed and
recorded in ``metrics.json``; never silently."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from speech_runs import HOP, SR, train_tiny, voiced, write_corpus

from seqflow.cli import main as cli
from seqflow.data.features import LogMel
from seqflow.speech.audio_io import mel_of_audio_file
from seqflow.speech.vocoder import load_vocoder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocode_inputs")
    return train_tiny(write_corpus(root / "corpus", count=4), root / "iaf")


def vocode(run, *inputs, out, extra=()):
    return cli(["vocode", str(run), *map(str, inputs), "--out", str(out), *extra])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def tone(rate: int, seconds: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(np.pi * t / t[-1])
            + 0.01 * np.random.default_rng(0).standard_normal(t.shape)).astype(np.float32)


# --- item 3: conversions are refused, or done with --convert and recorded ---------------------
def test_a_44k_stereo_file_is_refused_then_converted_and_recorded_with_convert(run, tmp_path,
                                                                              capsys):
    path = tmp_path / "stereo.wav"
    left = tone(44100)
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100, subtype="PCM_16")
    assert vocode(run, path, out=tmp_path / "refused") == 2
    err = one_line(capsys)
    assert str(path) in err and "44100 Hz" in err and "2 channels" in err and "--convert" in err
    assert not (tmp_path / "refused").exists()

    assert vocode(run, path, out=tmp_path / "o", extra=["--convert"]) == 0
    err = capsys.readouterr().err
    assert str(path) in err and "resampled 44100 Hz -> 16000 Hz" in err
    assert "mixed 2 channels down to their mean" in err
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())["files"][0]
    assert record["source"]["sample_rate"] == 44100 and record["source"]["channels"] == 2
    assert record["source"]["frames"] == len(left)
    assert record["converted"] == ["resampled 44100 Hz -> 16000 Hz",
                                   "mixed 2 channels down to their mean"]
    written, rate = sf.read(tmp_path / "o" / "stereo.wav")
    expected = -(-len(left) * SR // 44100) // HOP * HOP  # torchaudio's resampled length
    assert rate == SR and len(written) == expected


def test_an_8k_file_is_refused_naming_its_rate(run, tmp_path, capsys):
    path = tmp_path / "narrow.wav"
    sf.write(path, tone(8000), 8000, subtype="PCM_16")
    assert vocode(run, path, out=tmp_path / "o") == 2
    err = one_line(capsys)
    assert str(path) in err and "8000 Hz" in err and f"{SR} Hz" in err


def test_a_plain_file_records_its_rate_and_channels_and_no_conversion(run, tmp_path):
    path = tmp_path / "plain.wav"
    sf.write(path, voiced(0.3, 5), SR, subtype="PCM_16")
    assert vocode(run, path, out=tmp_path / "o") == 0
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())["files"][0]
    assert record["source"] == {"sample_rate": SR, "channels": 1, "frames": int(0.3 * SR),
                                "subtype": "PCM_16"}
    assert record["converted"] == []


def test_float_samples_beyond_one_are_refused_then_clipped_and_recorded(run, tmp_path, capsys):
    path = tmp_path / "loud.wav"
    audio = voiced(0.3, 6).astype(np.float32)
    audio[1000] = 1.5  # one sample: below check_audio's clipped fraction, so not "clipped"
    sf.write(path, audio, SR, subtype="FLOAT")
    assert vocode(run, path, out=tmp_path / "refused") == 2
    err = one_line(capsys)
    assert str(path) in err and "1.5" in err and "[-1, 1)" in err
    assert vocode(run, path, out=tmp_path / "o", extra=["--convert"]) == 0
    assert "clipped 1 sample(s)" in capsys.readouterr().err
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())["files"][0]
    assert record["converted"] == ["clipped 1 sample(s) beyond [-1, 1) (peak 1.5)"]


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_a_truncated_wav_is_refused_naming_declared_and_readable_frames(run, tmp_path, capsys,
                                                                        subtype):
    whole, path = tmp_path / "whole.wav", tmp_path / "cut.wav"
    sf.write(whole, voiced(0.3, 7), SR, subtype=subtype)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still declares 4800 frames
    readable = len(sf.read(path)[0])
    assert readable < 4800  # soundfile reads what is there without complaint
    assert vocode(run, path, out=tmp_path / "o") == 2
    err = one_line(capsys)
    assert str(path) in err and "4800" in err and str(readable) in err and "truncated" in err


def test_an_out_that_is_a_file_is_refused_before_any_work(run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a directory")
    assert vocode(run, tmp_path / "missing.wav", out=out) == 2
    err = one_line(capsys)
    assert str(out) in err and "a file exists there, not a folder" in err


def test_the_audio_of_sample_mel_from_is_not_resampled_silently(run, tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone(44100)] * 2, axis=1), 44100, subtype="PCM_16")
    logmel = LogMel(load_vocoder(run)[2].data.mel)
    with pytest.raises(ValueError, match="44100 Hz"):
        mel_of_audio_file(path, logmel)


# --- item 4: mels in other units are refused by their statistics ------------------------------
def mel_in(unit: str, logmel: LogMel) -> np.ndarray:
    """The log-mel of a voiced signal in ``unit``, from the run's own magnitude mel."""
    audio = np.concatenate([voiced(0.4, 11), voiced(0.4, 12)]).astype(np.float32)
    mel = logmel(torch.from_numpy(audio[: len(audio) // HOP * HOP])[None])[0].double().numpy()
    magnitude = np.exp(mel)
    power = magnitude**2
    return {
        "ln_magnitude": mel,
        "db_power": 10 * np.log10(np.maximum(power, 1e-10)),
        "db_above_floor": 20 * np.log10(np.maximum(magnitude, 1e-5)) + 100,
        "log10_magnitude": np.log10(np.maximum(magnitude, 1e-5)),
        "ln_power": np.log(np.maximum(power, 1e-5)),
        "ln_power_low_floor": np.log(np.maximum(power, 1e-10)),
    }[unit].astype(np.float32)


@pytest.mark.parametrize("unit", ["db_power", "db_above_floor", "log10_magnitude", "ln_power",
                                  "ln_power_low_floor"])
def test_a_mel_in_other_units_is_refused_naming_file_and_statistic(run, tmp_path, capsys, unit):
    logmel = LogMel(load_vocoder(run)[2].data.mel)
    path = tmp_path / f"{unit}.npy"
    np.save(path, mel_in(unit, logmel))
    assert vocode(run, path, out=tmp_path / "o") == 2
    err = one_line(capsys)
    assert str(path) in err and "natural log" in err
    assert not (tmp_path / "o").exists()


def test_the_expected_mel_passes_the_check_and_the_check_can_be_skipped(run, tmp_path, capsys):
    logmel = LogMel(load_vocoder(run)[2].data.mel)
    good, bad = tmp_path / "good.npy", tmp_path / "bad.npy"
    np.save(good, mel_in("ln_magnitude", logmel))
    np.save(bad, mel_in("log10_magnitude", logmel))
    assert vocode(run, good, out=tmp_path / "o") == 0
    capsys.readouterr()
    assert vocode(run, bad, out=tmp_path / "o2", extra=["--no-mel-check"]) == 0
    assert str(bad) in capsys.readouterr().err  # said, even when skipped
    record = json.loads((tmp_path / "o2" / "metrics.json").read_text())["files"][0]
    assert "not checked" in record["mel_check"]


def test_vocode_help_names_the_expected_log_mel(capsys):
    with pytest.raises(SystemExit):
        cli(["vocode", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("natural log", "magnitude", "log_floor", "n_mels", "hop_length", "Slaney"):
        assert words in text


# --- item 5: silent and clipped audio is named and skipped, as eval --data does ---------------
def test_silent_and_clipped_files_are_named_skipped_and_recorded(run, tmp_path, capsys):
    good, silent, clipped = tmp_path / "good.wav", tmp_path / "silent.wav", tmp_path / "clip.wav"
    sf.write(good, voiced(0.3, 8), SR, subtype="PCM_16")
    sf.write(silent, np.zeros(int(0.3 * SR)), SR, subtype="PCM_16")
    sf.write(clipped, np.clip(8 * voiced(0.3, 9), -1, 1), SR, subtype="PCM_16")
    assert vocode(run, good, silent, clipped, out=tmp_path / "o") == 0
    err = capsys.readouterr().err
    assert f"{silent}: skipped (silent" in err and f"{clipped}: skipped (clipped" in err
    report = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert [f["input"] for f in report["files"]] == [str(good)]
    assert [(s["input"], s["reason"]) for s in report["skipped"]] == [
        (str(silent), "silent"), (str(clipped), "clipped")]
    assert not (tmp_path / "o" / "silent.wav").exists()
    assert math.isfinite(report["total"]["mean_lsd_db"])


def test_only_silent_input_is_refused(run, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(int(0.3 * SR)), SR, subtype="PCM_16")
    assert vocode(run, silent, out=tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(silent) in err and "silent" in err and "no input left" in err
