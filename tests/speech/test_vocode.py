"""``seqflow vocode`` on a tiny sequence-IAF run: outputs and their lengths, metrics wiring,
batching by zero padding, the one pass against the streaming density direction, ``.npy`` mels,
and the one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from speech_runs import HOP, N_MELS, SR, train_tiny, write_corpus

from seqflow.cli import main as cli
from seqflow.data.features import LogMel
from seqflow.metrics.audio import log_spectral_distance, mel_cepstral_distortion
from seqflow.speech.vocode import input_noise, vocode_batch
from seqflow.speech.vocoder import load_vocoder

LSB = 2.0**-15


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocode")
    corpus = write_corpus(root / "corpus")
    return {"corpus": corpus, "iaf": train_tiny(corpus, root / "iaf"),
            "maf": train_tiny(corpus, root / "maf", "sequence_maf")}


def test_writes_wavs_pngs_and_metrics_of_the_right_lengths(runs, tmp_path, capsys):
    inputs = [runs["corpus"] / f"utt0{i}.wav" for i in (1, 3, 2)]  # 0.30, 0.40, 0.35 s
    out = tmp_path / "out"
    assert cli(["vocode", str(runs["iaf"]), *map(str, inputs), "--out", str(out),
                "--batch-size", "2", "--seed", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("seqflow vocode: vocoded 3 file(s)") and "MCD" in line
    report = json.loads((out / "metrics.json").read_text())
    assert [f["input"] for f in report["files"]] == [str(p) for p in inputs]
    assert report["threads"] >= 1 and report["batch_size"] == 2
    batches: dict[int, list[dict]] = {}
    for path, record in zip(inputs, report["files"], strict=True):
        source, _ = sf.read(path, dtype="float32")
        audio, rate = sf.read(out / f"{path.stem}.wav", dtype="float32")
        assert rate == SR and len(audio) == len(source) // HOP * HOP == record["samples"]
        assert (out / f"{path.stem}.png").stat().st_size > 1000
        # the metrics compare the written waveform with the input trimmed to frames * hop
        pred = torch.from_numpy(audio).double()[None]
        ref = torch.from_numpy(source[: len(audio)]).double()[None]
        lsd = log_spectral_distance(pred, ref, 1024, 256)
        mcd = mel_cepstral_distortion(pred, ref, SR, n_fft=1024, hop_length=256, n_mels=80,
                                      n_cepstra=24)
        assert record["lsd_db"] == pytest.approx(float(lsd[0]), rel=1e-6)
        assert record["mcd_db"] == pytest.approx(float(mcd[0]), rel=1e-6)
        assert 0.0 <= record["vuv_error_rate"] <= 1.0 and record["mr_stft"] > 0
        assert {"vuv_error", "f0_voiced_both_frames"}.isdisjoint(record)  # the old key names
        assert record["rms_ratio"] > 0 and "voiced_both" in record
        batches.setdefault(record["batch"], []).append(record)
    # longest first: the 0.40 s and 0.35 s files share a batch, the 0.30 s file is alone
    assert sorted(len(b) for b in batches.values()) == [1, 2]
    for members in batches.values():
        seconds = sum(r["seconds_of_audio"] for r in members)
        for r in members:
            assert r["rtf"] == pytest.approx(r["batch_seconds"] / seconds)
    total = report["total"]
    assert {"mean_mr_stft", "mean_mcd_db", "mean_vuv_error_rate", "mean_rms_ratio"} <= set(total)
    assert total["seconds_of_audio"] == pytest.approx(sum(len(sf.read(out / f"{p.stem}.wav")[0])
                                                          for p in inputs) / SR)


def test_zero_padding_in_a_batch_leaves_every_waveform_unchanged(runs):
    vocoder, *_ = load_vocoder(runs["iaf"])
    torch.manual_seed(0)
    mels = [torch.randn(N_MELS, frames) - 4 for frames in (9, 4, 6)]
    noises = [input_noise(0, i, m.shape[-1] * HOP, 1.0) for i, m in enumerate(mels)]
    together = vocode_batch(vocoder, mels, noises)
    for mel, z, wave in zip(mels, noises, together, strict=True):
        alone = vocode_batch(vocoder, [mel], [z])[0]
        assert wave.shape == (mel.shape[-1] * HOP,)
        torch.testing.assert_close(wave, alone, rtol=0, atol=1e-6)
    # the check can fail: frames after the end reach the last half frame through the upsampler
    short, z = mels[1], noises[1]
    padded = F.pad(short, (0, 5), value=1.0)
    with torch.no_grad():
        leaked = vocoder(padded[None], F.pad(z, (0, 5 * HOP))[None])[0, 0, : 4 * HOP]
    assert float((leaked - together[1]).abs().max()) > 1e-4


def test_the_one_pass_inverts_the_streaming_density_direction(runs):
    vocoder, flow, *_ = load_vocoder(runs["iaf"])
    mel = torch.randn(1, N_MELS, 5) - 4
    z = input_noise(1, 0, 5 * HOP, 1.0)[None]
    x = vocode_batch(vocoder, [mel[0]], [z[0]])[0]
    assert float((x - 0.1 * z[0, 0]).abs().max()) > 1e-3  # not the initial z / 10
    with torch.no_grad():  # the IAF's forward streams sample by sample: another code path
        recovered, _ = flow.transform(x.view(1, 1, -1), mel)
    torch.testing.assert_close(recovered, z, rtol=0, atol=1e-4)


def test_a_npy_mel_vocodes_like_the_audio_it_was_taken_from(runs, tmp_path):
    wav = runs["corpus"] / "utt05.wav"
    logmel = LogMel(load_vocoder(runs["iaf"])[2].data.mel)
    audio, _ = sf.read(wav, dtype="float32")
    audio = audio[: len(audio) // HOP * HOP]
    mel = logmel(torch.from_numpy(audio)[None])[0].numpy()
    np.save(tmp_path / "utt05.npy", mel)
    assert cli(["vocode", str(runs["iaf"]), str(tmp_path / "utt05.npy"), "--out",
                str(tmp_path / "from_mel")]) == 0
    assert cli(["vocode", str(runs["iaf"]), str(wav), "--out", str(tmp_path / "from_wav")]) == 0
    from_mel, _ = sf.read(tmp_path / "from_mel" / "utt05.wav", dtype="float32")
    from_wav, _ = sf.read(tmp_path / "from_wav" / "utt05.wav", dtype="float32")
    assert len(from_mel) == mel.shape[1] * HOP
    assert np.abs(from_mel - from_wav).max() <= LSB  # same noise (seed, index 0), same mel
    record = json.loads((tmp_path / "from_mel" / "metrics.json").read_text())["files"][0]
    assert record["metrics"] == "no reference audio (mel input)" and "mcd_db" not in record
    assert (tmp_path / "from_mel" / "utt05.png").stat().st_size > 1000


def test_a_mel_with_other_bands_is_refused_naming_file_and_shape(runs, tmp_path, capsys):
    path = tmp_path / "wide.npy"
    np.save(path, np.zeros((N_MELS + 1, 10), dtype=np.float32))
    assert cli(["vocode", str(runs["iaf"]), str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and f"({N_MELS + 1}, 10)" in err and f"n_mels={N_MELS}" in err
    assert not (tmp_path / "o").exists()


def test_a_maf_run_is_refused_with_a_pointer_to_streaming(runs, tmp_path, capsys):
    wav = runs["corpus"] / "utt00.wav"
    assert cli(["vocode", str(runs["maf"]), str(wav), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "streaming" in err and "seqflow sample" in err


def test_an_output_that_would_overwrite_an_input_is_refused(runs, tmp_path, capsys):
    wav = tmp_path / "in.wav"
    wav.write_bytes((runs["corpus"] / "utt00.wav").read_bytes())
    assert cli(["vocode", str(runs["iaf"]), str(wav), "--out", str(tmp_path)]) == 2
    assert "would overwrite an input" in capsys.readouterr().err
