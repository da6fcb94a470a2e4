"""Audio corpora: reading (formats, mix-down, resampling), bad-file screening, splits, datasets."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from torchaudio.functional import resample

from seqflow.data.audio import (
    QUANTIZATION_STEP,
    AudioConfig,
    AudioSegments,
    AudioUtterances,
    ScanReport,
    Split,
    dequantize,
    find_audio_files,
    item_generator,
    load_audio,
    read_metadata,
    resampled_length,
    scan_audio,
    split_files,
)
from seqflow.data.features import FeatureCache, LogMel, MelConfig

SR = 16000
STEP = 2.0**-15


def sine(seconds: float, freq: float = 440.0, amplitude: float = 0.5, rate: int = SR,
         phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def speechy(seconds: float, seed: int, rate: int = SR) -> np.ndarray:
    """Amplitude-modulated noise plus a gliding tone: non-silent, unclipped, varied."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    glide = np.sin(2 * np.pi * (150 * t + 40 * t**2))
    return 0.3 * envelope * (0.5 * glide + 0.3 * rng.standard_normal(t.shape)).clip(-1.5, 1.5)


def write(path, data, rate=SR, subtype="PCM_16", **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype, **kwargs)
    return path


# reading -------------------------------------------------------------------------------------


def test_stereo_mixes_down_to_the_channel_mean(tmp_path):
    left, right = sine(0.2, 300.0, 0.4), speechy(0.2, seed=1)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1))
    stored, _ = sf.read(path, dtype="float64")  # the int16 values actually in the file
    mono = load_audio(path, SR).double().numpy()
    expected = stored.mean(axis=1)
    assert mono.shape == expected.shape
    assert np.abs(mono - expected).max() <= STEP / 2 + 1e-12  # rounding to the 16-bit grid
    assert np.all(np.round(mono * 32768) == mono * 32768)


@pytest.mark.parametrize("subtype, near_sine", [("PCM_U8", 1 / 128), ("PCM_16", 1e-4),
                                                ("PCM_24", 1e-4), ("FLOAT", 1e-4)])
def test_bit_depths_read_to_the_16_bit_grid(tmp_path, subtype, near_sine):
    signal = sine(0.1, 1000.0, 0.6)
    path = write(tmp_path / f"tone_{subtype}.wav", signal, subtype=subtype)
    if subtype == "FLOAT":
        stored, _ = sf.read(path, dtype="float64")
    else:  # integer samples, left-aligned in int32 by libsndfile: exact, no float scaling
        stored = sf.read(path, dtype="int32")[0].astype(np.float64) / 2.0**31
    audio = load_audio(path, SR).double().numpy()
    assert audio.shape == signal.shape
    assert np.abs(audio - stored).max() <= STEP / 2  # rounding to the 16-bit grid
    if subtype == "PCM_U8":
        np.testing.assert_array_equal(audio, stored)  # 8-bit values lie on the 16-bit grid
    assert np.all(np.round(audio * 32768) == audio * 32768)
    assert audio.min() >= -1.0 and audio.max() < 1.0
    assert np.abs(audio - signal).max() < near_sine  # and it is the sine that was written


def test_flac_is_read_exactly(tmp_path):
    signal = np.round(sine(0.1, 700.0, 0.5) * 32768) / 32768
    path = write(tmp_path / "x.flac", signal)
    np.testing.assert_array_equal(load_audio(path, SR).double().numpy(), signal)


def test_44k1_is_resampled_to_16k_keeping_frequency_and_amplitude(tmp_path):
    path = write(tmp_path / "hi.wav", sine(1.0, 440.0, 0.5, rate=44100), rate=44100)
    audio = load_audio(path, SR).double().numpy()
    assert len(audio) == 16000
    interior = slice(800, 15200)  # away from the filter's edge effects
    expected = sine(1.0, 440.0, 0.5)
    assert np.abs(audio[interior] - expected[interior]).max() < 2e-3
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert int(spectrum.argmax()) == 440  # 1 Hz bins over one second
    rms = np.sqrt(np.mean(audio[interior] ** 2))
    assert abs(rms * math.sqrt(2) - 0.5) < 2e-3


@pytest.mark.parametrize("length", [1, 441, 44099, 44100, 100003])
def test_resampled_length_matches_torchaudio(length):
    out = resample(torch.zeros(length), 44100, SR)
    assert resampled_length(length, 44100, SR) == out.shape[0]


def test_unreadable_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(ValueError, match="bad.wav: cannot read audio") as info:
        load_audio(path, SR)
    assert "\n" not in str(info.value)


# scanning ------------------------------------------------------------------------------------


def make_mixed_corpus(root):
    """Six good files in nested folders and formats, and one of each bad kind."""
    good = [
        write(root / "a" / "one.wav", speechy(0.5, 1)),
        write(root / "a" / "b" / "two.flac", speechy(0.6, 2)),
        write(root / "three.ogg", speechy(0.5, 3), subtype="VORBIS"),
        write(root / "four.wav", speechy(0.4, 4, rate=22050), rate=22050),
        write(root / "five.wav", np.stack([speechy(0.5, 5), speechy(0.5, 6)], 1)),
        write(root / "six.wav", speechy(0.3, 7), subtype="PCM_24"),
    ]
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    (root / "zero_bytes.flac").write_bytes(b"")
    write(root / "no_frames.wav", np.zeros(0))
    write(root / "silent.wav", np.zeros(8000))
    write(root / "quiet.wav", 1e-4 * np.random.default_rng(0).standard_normal(8000))
    clipped = np.clip(3 * sine(0.5, 200.0, 1.0), -1, 1)
    write(root / "clipped.wav", clipped)
    (root / "notes.txt").write_text("not audio")
    return good


EXPECTED_BAD = {
    "corrupt.wav": "unreadable",
    "zero_bytes.flac": "unreadable",
    "no_frames.wav": "empty",
    "silent.wav": "silent",
    "quiet.wav": "silent",
    "clipped.wav": "clipped",
}


def test_scan_skips_counts_and_names_bad_files(tmp_path, caplog):
    make_mixed_corpus(tmp_path)
    with caplog.at_level(logging.WARNING, logger="seqflow.data.audio"):
        corpus = scan_audio(tmp_path, AudioConfig(max_bad_fraction=0.6))
    assert sorted(corpus.paths) == sorted(
        ["a/one.wav", "a/b/two.flac", "three.ogg", "four.wav", "five.wav", "six.wav"]
    )
    report = corpus.report
    assert {s.path: s.reason for s in report.skipped} == EXPECTED_BAD
    assert report.num_files == 12 and report.num_kept == 6
    assert report.counts() == {"clipped": 1, "empty": 1, "silent": 2, "unreadable": 2}
    assert "skipped 6 of 12" in caplog.text and "corrupt.wav" in caplog.text
    four = next(i for i in corpus.items if i.path == "four.wav")
    assert four.file_rate == 22050 and four.num_samples == resampled_length(8820, 22050, SR)

    report.to_json(tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["counts"] == report.counts() and len(data["skipped"]) == 6
    assert ScanReport.from_json(tmp_path / "report.json") == report


def test_too_many_bad_files_is_one_clear_error(tmp_path):
    make_mixed_corpus(tmp_path)
    with pytest.raises(ValueError) as info:
        scan_audio(tmp_path, AudioConfig(max_bad_fraction=0.25))
    message = str(info.value)
    assert "\n" not in message
    assert "max_bad_fraction=0.25" in message and "skipped 6 of 12" in message
    assert "2 unreadable" in message and "corrupt.wav" in message


def test_min_samples_skips_short_files(tmp_path):
    write(tmp_path / "long.wav", speechy(1.0, 1))
    write(tmp_path / "short.wav", speechy(0.1, 2))
    corpus = scan_audio(tmp_path, AudioConfig(min_samples=4000, max_bad_fraction=0.5))
    assert corpus.paths == ["long.wav"]
    assert [(s.path, s.reason) for s in corpus.report.skipped] == [("short.wav", "too_short")]


def test_clip_fraction_threshold(tmp_path):
    signal = speechy(1.0, 1)
    signal[:10] = 1.0  # 10 of 16000 samples = 0.0625 %
    write(tmp_path / "few.wav", signal, subtype="FLOAT")
    assert scan_audio(tmp_path, AudioConfig(max_clip_fraction=1e-3)).paths == ["few.wav"]
    with pytest.raises(ValueError, match="clipped"):
        scan_audio(tmp_path, AudioConfig(max_clip_fraction=1e-4))


def test_ljspeech_folder_uses_metadata_and_reports_missing_files(tmp_path):
    for name in ("LJ001-0001", "LJ001-0002"):
        write(tmp_path / "wavs" / f"{name}.wav", speechy(0.3, len(name)))
    write(tmp_path / "wavs" / "unlisted.wav", speechy(0.3, 9))
    (tmp_path / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1 sense|Printing, in one sense\n"
        "LJ001-0002|in being comparatively modern.\n"
        "LJ001-0003|gone|gone\n",
        encoding="utf-8",
    )
    corpus = scan_audio(tmp_path, AudioConfig(max_bad_fraction=0.5))
    assert corpus.paths == ["wavs/LJ001-0001.wav", "wavs/LJ001-0002.wav"]
    first, second = corpus.items
    assert (first.text, first.normalized_text) == ("Printing, in 1 sense", "Printing, in one sense")
    assert second.normalized_text == "in being comparatively modern."
    assert [(s.path, s.reason) for s in corpus.report.skipped] == [
        ("wavs/LJ001-0003.wav", "missing")
    ]


def test_bad_metadata_line_names_file_and_line(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text("a|ok|ok\nno separator here\n")
    with pytest.raises(ValueError, match=r"metadata.csv: line 2: expected"):
        read_metadata(path)
    path.write_text("a|x\na|y\n")
    with pytest.raises(ValueError, match=r"line 2: id 'a' repeats line 1"):
        read_metadata(path)


def test_find_audio_files_is_recursive_sorted_and_ignores_other_files(tmp_path):
    make_mixed_corpus(tmp_path)
    found = find_audio_files(tmp_path)
    assert found == sorted(found) and "notes.txt" not in found
    assert "a/b/two.flac" in found and "three.ogg" in found and len(found) == 12


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no .wav/.flac/.ogg files"):
        scan_audio(tmp_path)


# splits --------------------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_complete_and_round_trips(tmp_path):
    paths = [f"spk{i % 3}/utt{i:03d}.wav" for i in range(100)]
    split = split_files(paths, val_fraction=0.1, test_fraction=0.05, seed=3)
    assert (len(split.train), len(split.val), len(split.test)) == (85, 10, 5)
    assert sorted(split.train + split.val + split.test) == sorted(paths)
    assert split == split_files(list(reversed(paths)), 0.1, 0.05, seed=3)  # order-free
    assert split != split_files(paths, 0.1, 0.05, seed=4)
    split.to_json(tmp_path / "split.json")
    assert Split.from_json(tmp_path / "split.json") == split


def test_split_rank_of_a_file_depends_only_on_its_name_and_the_seed():
    paths = [f"{i}.wav" for i in range(50)]
    small = split_files(paths, 0.1, 0.1, seed=0)
    large = split_files(paths + [f"extra{i}.wav" for i in range(50)], 0.05, 0.05, seed=0)
    assert set(large.test) - {p for p in large.test if p.startswith("extra")} <= set(small.test)


def test_split_refusals(tmp_path):
    with pytest.raises(ValueError, match="none for training"):
        split_files(["a.wav", "b.wav"], 0.3, 0.3)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_files(["a.wav"], 1.0, 0.0)
    bad = tmp_path / "split.json"
    bad.write_text(json.dumps({"train": ["a"], "val": ["a"], "test": [], "seed": 0,
                               "val_fraction": 0.1, "test_fraction": 0.0}))
    with pytest.raises(ValueError, match="more than one split"):
        Split.from_json(bad)


# datasets ------------------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path):
    write(tmp_path / "long.wav", speechy(1.0, 1))
    write(tmp_path / "mid.flac", speechy(0.5, 2))
    write(tmp_path / "hi.wav", speechy(0.4, 3, rate=22050), rate=22050)
    write(tmp_path / "short.wav", speechy(0.1, 4))
    return scan_audio(tmp_path)


def test_segments_are_a_pure_function_of_seed_and_index(corpus):
    cfg = MelConfig()
    a = AudioSegments(corpus, None, cfg, segment_length=4096, seed=7)
    b = AudioSegments(corpus, None, cfg, segment_length=4096, seed=7)
    other = AudioSegments(corpus, None, cfg, segment_length=4096, seed=8)
    for index in (0, 5, 123456):
        first, again = a[index], b[index]
        assert first["index"] == index
        assert torch.equal(first["x"], again["x"]) and torch.equal(first["context"],
                                                                   again["context"])
    assert not torch.equal(a[0]["x"], a[1]["x"])
    assert not all(torch.equal(a[i]["x"], other[i]["x"]) for i in range(4))


def test_segment_content_shapes_and_dequantization(corpus):
    cfg = MelConfig()
    data = AudioSegments(corpus, None, cfg, segment_length=4096, seed=0)
    clean_data = AudioSegments(corpus, None, cfg, segment_length=4096, seed=0, dequantize=False)
    logmel = LogMel(cfg)
    assert [(s.path, s.reason) for s in data.report.skipped] == [("short.wav", "too_short")]
    seen: set[str] = set()
    for index in range(60):
        path, start = data.locate(index)
        if path in seen and index >= 8:
            continue
        seen.add(path)
        item = data[index]
        clean = load_audio(corpus.root / path, SR)[start:start + 4096]
        assert item["x"].shape == (1, 4096) and item["x"].dtype == torch.float32
        assert item["context"].shape == (80, 16)
        torch.testing.assert_close(item["context"], logmel(clean[None])[0], rtol=0, atol=0)
        noise = (item["x"][0] - clean).double()
        assert noise.min() >= 0 and noise.max() < STEP and noise.std() > STEP / 5
        assert item["x"].max() < 1.0 and item["x"].min() >= -1.0
        assert torch.equal(clean_data[index]["x"][0], clean)
    assert "hi.wav" in seen  # a resampled file is served too


def test_segment_starts_are_uniform_over_all_positions(corpus):
    data = AudioSegments(corpus, ["long.wav", "mid.flac"], MelConfig(), segment_length=2048,
                         seed=0)
    draws = [data.locate(i) for i in range(2000)]
    long_positions, mid_positions = 16000 - 2048 + 1, 8000 - 2048 + 1
    share = sum(p == "long.wav" for p, _ in draws) / len(draws)
    expected = long_positions / (long_positions + mid_positions)
    assert abs(share - expected) < 0.04  # ~4 standard errors
    assert all(0 <= s <= (long_positions if p == "long.wav" else mid_positions) - 1
               for p, s in draws)
    assert len(data) == (16000 + 8000) // 2048


def test_segment_settings_are_checked(corpus):
    with pytest.raises(ValueError, match="multiple of hop_length=256"):
        AudioSegments(corpus, None, MelConfig(), segment_length=1000, seed=0)
    with pytest.raises(ValueError, match="no file of at least"):
        AudioSegments(corpus, None, MelConfig(), segment_length=32768, seed=0)
    with pytest.raises(ValueError, match="not among the corpus"):
        AudioSegments(corpus, ["nope.wav"], MelConfig(), segment_length=4096, seed=0)
    with pytest.raises(ValueError, match="sample_rate"):
        AudioSegments(corpus, None, MelConfig(sample_rate=22050, f_max=8000.0),
                      segment_length=4096, seed=0)


def test_item_generator_streams_differ_by_seed_and_index():
    draws = {(s, i): torch.rand(4, generator=item_generator(s, i)) for s in (0, 1) for i in (0, 1)}
    values = list(draws.values())
    assert all(not torch.equal(values[i], values[j]) for i in range(4) for j in range(i))
    assert torch.equal(torch.rand(4, generator=item_generator(1, 0)), draws[(1, 0)])


def test_utterances_trim_to_hop_and_cache_whole_file_features(corpus, tmp_path):
    cfg = MelConfig()
    cache = FeatureCache(tmp_path / "features", cfg)
    data = AudioUtterances(corpus, ["long.wav", "hi.wav", "short.wav"], cfg, cache=cache)
    assert len(data) == 3
    logmel = LogMel(cfg)
    for i in range(len(data)):
        item = data[i]
        full = load_audio(corpus.root / item["path"], SR)
        length = len(full) // 256 * 256
        assert item["x"].shape == (1, length)
        torch.testing.assert_close(item["x"][0], full[:length], rtol=0, atol=0)
        expected = logmel(full[None, :length])[0]
        assert item["context"].shape == (80, length // 256)
        torch.testing.assert_close(item["context"], expected, rtol=0, atol=0)
    assert cache.misses == 3 and cache.hits == 0
    again = data[0]["context"]
    assert cache.hits == 1
    full = load_audio(corpus.root / "long.wav", SR)
    torch.testing.assert_close(again, logmel(full[None, :16000 // 256 * 256])[0], rtol=0, atol=0)


def test_utterance_dequantization_is_seeded_and_within_one_step(corpus):
    cfg = MelConfig()
    a = AudioUtterances(corpus, ["mid.flac"], cfg, dequantize=True, seed=1)
    b = AudioUtterances(corpus, ["mid.flac"], cfg, dequantize=True, seed=1)
    clean = AudioUtterances(corpus, ["mid.flac"], cfg)[0]["x"]
    assert torch.equal(a[0]["x"], b[0]["x"])
    noise = (a[0]["x"] - clean).double()
    assert noise.min() >= 0 and noise.max() < QUANTIZATION_STEP


def test_dequantization_stays_below_the_next_grid_value_even_at_the_top():
    top = torch.full((200000,), 1.0 - STEP)
    bottom = torch.full((200000,), -1.0)
    for clean in (top, bottom):
        x = dequantize(clean, item_generator(0, 0))
        noise = x.double() - clean.double()
        assert noise.min() >= 0 and noise.max() < STEP
        assert abs(noise.mean().item() / STEP - 0.5) < 0.01  # uniform over the step: mean 1/2
    assert dequantize(top, item_generator(0, 0)).max() < 1.0
