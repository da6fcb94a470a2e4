"""LogMel against an independent numpy STFT + librosa filterbank; MelConfig; FeatureCache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os

import librosa
import numpy as np
import pytest
import torch

from seqflow.data.features import FEATURE_VERSION, FeatureCache, LogMel, MelConfig


def numpy_logmel(x: np.ndarray, cfg: MelConfig, window: str) -> np.ndarray:
    """Reference: reflect pad, frame, periodic window, |rfft|, librosa Slaney mel, log floor."""
    left = (cfg.n_fft - cfg.hop_length) // 2
    right = cfg.n_fft - cfg.hop_length - left
    padded = np.pad(x.astype(np.float64), (left, right), mode="reflect")
    n = np.arange(cfg.win_length)
    if window == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)
    else:  # hamming
        w = 0.54 - 0.46 * np.cos(2 * np.pi * n / cfg.win_length)
    offset = (cfg.n_fft - cfg.win_length) // 2
    full = np.zeros(cfg.n_fft)
    full[offset:offset + cfg.win_length] = w
    num_frames = 1 + (len(padded) - cfg.n_fft) // cfg.hop_length
    frames = np.stack(
        [padded[k * cfg.hop_length:k * cfg.hop_length + cfg.n_fft] for k in range(num_frames)]
    )
    magnitude = np.abs(np.fft.rfft(frames * full, axis=1)).T  # (freqs, frames)
    fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                             fmin=cfg.f_min, fmax=cfg.f_max, htk=False, norm="slaney")
    return np.log(np.maximum(fb @ magnitude, cfg.log_floor))


@pytest.mark.parametrize(
    "cfg, window",
    [
        (MelConfig(), "hann"),
        (MelConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=400,
                   window="hamming", n_mels=40, f_min=50.0, f_max=7600.0, log_floor=1e-4),
         "hamming"),
    ],
)
def test_logmel_matches_numpy_stft_with_librosa_filterbank(cfg, window):
    rng = np.random.default_rng(0)
    t = np.arange(8000) / cfg.sample_rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.shape)
    x[:2000] = 0.0  # frames of silence exercise the floor
    ours = LogMel(cfg)(torch.tensor(x, dtype=torch.float32)[None])[0].double().numpy()
    reference = numpy_logmel(x.astype(np.float32), cfg, window)
    assert ours.shape == reference.shape == (cfg.n_mels, len(x) // cfg.hop_length)
    np.testing.assert_allclose(ours, reference, atol=2e-4, rtol=0)
    assert (reference == math.log(cfg.log_floor)).any()  # the floor was reached somewhere


@pytest.mark.parametrize("length", [385, 512, 4096, 4097, 4351, 16000, 16384])
def test_frame_count_is_samples_over_hop(length):
    cfg = MelConfig()
    out = LogMel(cfg)(torch.randn(2, length))
    assert out.shape == (2, 80, length // 256)
    if length % 256 == 0:
        assert out.shape[-1] * cfg.hop_length == length


def test_frame_k_is_centred_on_hop_block_k():
    """An impulse in the middle of hop block k sits at the window peak of frame k and half-way
    down the periodic Hann window of frames k - 1 and k + 1 (w[n/2 -+ hop] = 0.5 for hop=n/4)."""
    cfg = MelConfig()
    k = 10
    x = torch.zeros(1, 32 * cfg.hop_length)
    x[0, k * cfg.hop_length + cfg.hop_length // 2] = 1.0
    out = LogMel(cfg)(x)[0]
    mel = out.exp()
    energy = mel.sum(0)
    assert int(energy.argmax()) == k
    above = mel[:, k] > 10 * cfg.log_floor
    for neighbour in (k - 1, k + 1):
        ratio = (out[above, neighbour] - out[above, k]).exp()
        torch.testing.assert_close(ratio, torch.full_like(ratio, 0.5), atol=1e-4, rtol=0)
    assert energy[k - 2] < 1e-3 * energy[k] and energy[k + 2] < 1e-3 * energy[k]


def test_logmel_accepts_batch_time_and_batch_one_time_and_refuses_others():
    m = LogMel()
    x = torch.randn(3, 2048)
    torch.testing.assert_close(m(x), m(x[:, None]), rtol=0, atol=0)
    for bad in (torch.randn(2048), torch.randn(3, 2, 2048)):
        with pytest.raises(ValueError, match="expected audio"):
            m(bad)
    with pytest.raises(ValueError, match="shorter than the minimum"):
        m(torch.randn(1, 384))
    with pytest.raises(ValueError, match="floating-point"):
        m(torch.zeros(1, 2048, dtype=torch.int16))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"f_max": 8001.0}, "f_max=8001.0 exceeds sample_rate/2"),
        ({"sample_rate": 8000}, "exceeds sample_rate/2=4000"),
        ({"n_fft": 0}, "n_fft must be a positive int"),
        ({"hop_length": -1}, "hop_length must be a positive int"),
        ({"n_mels": 2.5}, "n_mels must be a positive int"),
        ({"win_length": 2048}, "win_length=2048 must be <= n_fft=1024"),
        ({"hop_length": 2048, "win_length": 1024}, "hop_length=2048 must be <= n_fft"),
        ({"window": "kaiser"}, "window must be one of"),
        ({"f_min": 9000.0}, "f_min < f_max"),
        ({"f_min": -1.0}, "f_min < f_max"),
        ({"log_floor": 0.0}, "log_floor must be > 0"),
    ],
)
def test_config_validation_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        MelConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_too_many_mels_for_the_fft_is_refused():
    with pytest.raises(ValueError, match="cover no FFT bin"):
        LogMel(MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=128))


def test_digest_is_sha256_of_sorted_json_fields_and_tracks_every_field():
    cfg = MelConfig()
    payload = {"feature_version": FEATURE_VERSION, "sample_rate": 16000, "n_fft": 1024,
               "hop_length": 256, "win_length": 1024, "window": "hann", "n_mels": 80,
               "f_min": 0.0, "f_max": 8000.0, "log_floor": 1e-5}
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert cfg.digest() == expected
    assert MelConfig(f_min=0, f_max=8000).digest() == expected
    changes = {"sample_rate": 22050, "n_fft": 2048, "hop_length": 128, "win_length": 800,
               "window": "hamming", "n_mels": 64, "f_min": 20.0, "f_max": 7000.0,
               "log_floor": 1e-6}
    assert set(changes) == {f.name for f in dataclasses.fields(MelConfig)}
    digests = {dataclasses.replace(cfg, **{k: v}).digest() for k, v in changes.items()}
    assert len(digests) == len(changes) and expected not in digests


# FeatureCache ---------------------------------------------------------------------------------


def write_bytes(path, data: bytes) -> None:
    path.write_bytes(data)


def test_cache_round_trip_and_hit_counting(tmp_path):
    source = tmp_path / "a.wav"
    write_bytes(source, b"first")
    cache = FeatureCache(tmp_path / "cache", MelConfig())
    features = torch.randn(80, 7)
    calls = []

    def compute():
        calls.append(1)
        return features

    first = cache.get_or_compute(source, compute)
    second = cache.get_or_compute(source, compute)
    assert len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    torch.testing.assert_close(second, features, rtol=0, atol=0)
    torch.testing.assert_close(first, features, rtol=0, atol=0)
    files = sorted(p.name for p in cache.directory.iterdir())
    assert files == sorted(["config.json", f"{cache.key(source)}.npy"])  # no temporaries left
    assert json.loads((cache.directory / "config.json").read_text())["n_mels"] == 80


def test_cache_misses_after_config_change(tmp_path):
    source = tmp_path / "a.wav"
    write_bytes(source, b"content")
    FeatureCache(tmp_path / "cache", MelConfig()).put(source, torch.zeros(80, 3))
    assert FeatureCache(tmp_path / "cache", MelConfig()).get(source) is not None
    other = FeatureCache(tmp_path / "cache", MelConfig(f_min=30.0))
    assert other.get(source) is None and other.misses == 1


def test_cache_misses_after_file_change_in_size_or_mtime(tmp_path):
    source = tmp_path / "a.wav"
    write_bytes(source, b"12345")
    cache = FeatureCache(tmp_path / "cache", MelConfig())
    cache.put(source, torch.zeros(80, 3))
    assert cache.get(source) is not None
    write_bytes(source, b"123456")  # size changes
    assert cache.get(source) is None
    cache.put(source, torch.zeros(80, 3))
    stat = source.stat()
    write_bytes(source, b"abcdef")  # same size; force a different mtime
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache.get(source) is None


def test_cache_key_uses_resolved_path(tmp_path):
    (tmp_path / "sub").mkdir()
    source = tmp_path / "a.wav"
    write_bytes(source, b"x")
    cache = FeatureCache(tmp_path / "cache", MelConfig())
    assert cache.key(tmp_path / "sub" / ".." / "a.wav") == cache.key(source)


def test_unreadable_or_wrong_shape_entry_is_a_logged_miss(tmp_path, caplog):
    source = tmp_path / "a.wav"
    write_bytes(source, b"x")
    cache = FeatureCache(tmp_path / "cache", MelConfig())
    cache.put(source, torch.zeros(80, 3))
    cache.entry(source).write_bytes(b"not an npy file")
    with caplog.at_level(logging.WARNING):
        assert cache.get(source) is None
    assert "unreadable entry" in caplog.text
    np.save(cache.entry(source), np.zeros((40, 3), dtype=np.float32))
    assert cache.get(source) is None
    with pytest.raises(ValueError, match=r"expected \(80, frames\)"):
        cache.put(source, torch.zeros(40, 3))


def test_missing_source_is_a_one_line_error(tmp_path):
    cache = FeatureCache(tmp_path / "cache", MelConfig())
    with pytest.raises(ValueError, match="cannot stat"):
        cache.get(tmp_path / "nope.wav")
