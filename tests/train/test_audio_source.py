"""The ``audio`` data source on tiny written wav files: items and run files, training through the
engine with an exact resume, whole-utterance evaluation (``seqflow eval``, ``--data``) and
streamed sampling from a mel (``seqflow sample --mel-from``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from seqflow.cli import main as cli
from seqflow.data.features import LogMel
from seqflow.nn.context import SequenceContext
from seqflow.speech.evaluate import bits_per_16bit_sample
from seqflow.speech.sample import stream_from_mel
from seqflow.train.audio_data import DIGEST_FILE, SCAN_FILE, SPLIT_FILE, utterances
from seqflow.train.config import ConfigError, config_from_dict
from seqflow.train.datasets import build_splits
from seqflow.train.engine import train
from seqflow.train.models import build_flow
from seqflow.train.run_dir import load_run

SR = 16000


def speechy(seconds: float, seed: int) -> np.ndarray:
    """A gliding harmonic tone with a syllable-rate envelope plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 60 * rng.random()
    phase = 2 * np.pi * (f0 * t + 15 * t**2)
    wave = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.05 * rng.standard_normal(t.shape)
    return 0.3 * (0.2 + 0.8 * np.sin(2 * np.pi * 3 * t) ** 2) * wave / 1.6


def write_corpus(root, count: int, seed: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sf.write(root / f"utt{i:02d}.wav", speechy(0.25 + 0.05 * (i % 4), seed + i), SR,
                 subtype="PCM_16")
    return root


def config(root, **train):
    return config_from_dict({
        "model": {"kind": "sequence_maf", "channels": 1, "steps": 1, "blocks": 3,
                  "residual_channels": 4, "skip_channels": 4, "log_scale_floor": -9.0,
                  "input_scale": 0.1},
        "data": {"source": "audio", "path": str(root), "segment_length": 1024,
                 "num_samples": 24, "val_items": 4, "val_fraction": 0.2, "test_fraction": 0.2,
                 "mel": {"n_fft": 512, "win_length": 512, "hop_length": 128, "n_mels": 16}},
        "train": {"max_steps": 6, "batch_size": 2, "lr": 3e-3, "lr_schedule": "constant",
                  "checkpoint_every": 3, "eval_every": 3, "log_every": 3, "eval_batch_size": 4,
                  "log_with": "none", "progress": False, "cpu_threads": 1, **train},
    })


def test_items_are_segments_with_their_mel_and_the_split_is_written(tmp_path):
    cfg = config(write_corpus(tmp_path / "corpus", 10))
    run = tmp_path / "run"
    run.mkdir()
    splits = build_splits(cfg, run_dir=run)
    split = json.loads((run / SPLIT_FILE).read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == \
        [f"utt{i:02d}.wav" for i in range(10)]
    assert len(split["val"]) == len(split["test"]) == 2
    assert json.loads((run / SCAN_FILE).read_text())["scan"]["num_kept"] == 10
    item = splits["train"][5]
    assert item["x"].shape == (1, 1024) and item["context"].shape == (16, 8)
    codes = item["x"] * 32768  # dequantized 16-bit values: code + u with u in [0, 1)
    assert bool(((codes - codes.floor()) > 0).any())
    again = build_splits(cfg, run_dir=run)["train"][5]  # a pure function of (seed, index)
    assert torch.equal(again["x"], item["x"]) and torch.equal(again["context"],
                                                                item["context"])
    path, start = splits["train"].locate(5)
    assert path in split["train"]
    assert len(splits["val"]) == 4 and splits["val"].locate(0)[0] in split["val"]
    audio, _ = sf.read(tmp_path / "corpus" / path, dtype="float32")
    mel = LogMel(cfg.data.mel)(torch.from_numpy(audio[start:start + 1024])[None])[0]
    torch.testing.assert_close(item["context"], mel)


def test_the_upsampling_factor_must_equal_the_hop(tmp_path):
    cfg = config(write_corpus(tmp_path / "corpus", 6))
    cfg.model.upsample_factor = 64
    with pytest.raises(ConfigError, match="upsample_factor=64 must equal data.mel.hop_length=128"):
        build_splits(cfg)


@pytest.mark.slow
def test_trains_resumes_exactly_evaluates_and_samples(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", 10)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config(corpus), straight)
    train(config(corpus, max_steps=3), resumed)
    with pytest.warns(UserWarning, match="changed train.max_steps"):
        result = train(config(corpus), resumed)
    assert result.resumed_from is not None and result.step == 6
    a = load_file(str(straight / "final" / "weights.safetensors"))
    b = load_file(str(resumed / "final" / "weights.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0  # bit-identical

    capsys.readouterr()
    assert cli(["eval", str(resumed)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "nats/sample (" in line and "bits per 16-bit sample)" in line
    assert "uniform dequantization" in line
    metrics = json.loads((resumed / "metrics_test.json").read_text())
    files = json.loads((resumed / "per_file_test.json").read_text())["files"]
    assert metrics["utterances"] == len(files) == 2
    assert metrics["samples"] == sum(f["samples"] for f in files)
    # the per-file log-likelihoods are the flow's log-density of the dequantized utterances
    flow, cfg, _ = load_run(resumed)
    held_out = utterances(cfg, resumed, "test")
    item = held_out[0]
    with torch.no_grad():
        direct = float(flow.log_prob(item["x"][None], SequenceContext(item["context"][None],
                                                                      None)))
    assert files[0]["log_prob"] == pytest.approx(direct, rel=1e-6)
    total = sum(f["log_prob"] for f in files) / metrics["samples"]
    assert metrics["nats_per_sample"] == pytest.approx(total)
    assert metrics["bits_per_16bit_sample"] == pytest.approx(15 - total / math.log(2))

    other = write_corpus(tmp_path / "other", 3, seed=100)
    assert cli(["eval", str(resumed), "--data", str(other)]) == 0
    (written,) = resumed.glob("per_file_data_other_*.json")
    scored = json.loads(written.read_text())["files"]
    assert sorted(f["path"] for f in scored) == ["utt00.wav", "utt01.wav", "utt02.wav"]

    out = tmp_path / "sample.wav"
    assert cli(["sample", str(resumed), "--mel-from", str(other / "utt01.wav"),
                "--out", str(out)]) == 0
    assert "real-time factor" in capsys.readouterr().out
    audio, rate = sf.read(out)
    assert rate == SR and len(audio) == len(sf.read(other / "utt01.wav")[0]) // 128 * 128
    assert out.with_suffix(".png").stat().st_size > 1000


def test_bits_per_16bit_sample_is_the_dequantized_code_length():
    # a uniform density over [-1, 1) has log p = -log 2 and codes cost exactly 16 bits
    assert bits_per_16bit_sample(-math.log(2.0)) == pytest.approx(16.0)


def test_chunked_streaming_from_a_mel_equals_one_stream_and_inverts_the_one_pass_forward():
    torch.manual_seed(0)
    cfg = config_from_dict({"model": {
        "kind": "sequence_maf", "channels": 1, "steps": 2, "blocks": 3, "residual_channels": 4,
        "skip_channels": 4, "cond_channels": 8, "upsample_factor": 16,
        "log_scale_floor": -9.0, "input_scale": 0.1}})
    flow = build_flow(cfg.model).double().eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    mel = torch.randn(1, 8, 8, dtype=torch.float64)  # 128 samples; receptive field 15
    stream = stream_from_mel(flow, mel, SR, seed=3, chunk=7, progress=False)
    z = torch.randn(1, 1, 128, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    context = SequenceContext(mel, None)
    with torch.no_grad():
        whole, _ = flow.transform.inverse(z, context)  # one uninterrupted stream
        back, _ = flow.transform(stream.audio.view(1, 1, -1), context)  # one pass
    torch.testing.assert_close(stream.audio.view(1, 1, -1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(back, z, rtol=1e-8, atol=1e-9)
    assert stream.rtf > 0


def test_a_changed_corpus_file_is_refused_naming_it(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", count=10)
    cfg = config(corpus)
    run = tmp_path / "run"
    run.mkdir()
    first = utterances(cfg, run, "test")  # draws the split and records the files' digests
    assert (run / DIGEST_FILE).is_file()
    assert len(utterances(cfg, run, "test")) == len(first)  # an unchanged corpus is accepted
    victim = json.loads((run / SPLIT_FILE).read_text())["test"][0]
    sf.write(corpus / victim, speechy(1.0, seed=99), SR, subtype="PCM_16")  # re-prepared audio
    with pytest.raises(ValueError, match=rf"{victim} changed since the run was trained on it"):
        utterances(cfg, run, "test")
