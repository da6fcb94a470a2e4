"""The speech recipe's data preparation: transcript parsing, drop rules, tone detection; no apt."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

PREPARE = Path(__file__).resolve().parents[2] / "recipes" / "speech" / "prepare.py"
SR = 16000


@pytest.fixture(scope="module")
def prepare():
    spec = importlib.util.spec_from_file_location("speech_prepare", PREPARE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def quantized(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32768).clip(-32768, 32767) / 32768


def beep(freqs=(1000.0,), seconds=0.4, amplitude=0.3) -> np.ndarray:
    """Tone(s) in sequence with 5 ms raised-cosine ramps, on the 16-bit grid."""
    parts = []
    for f in freqs:
        t = np.arange(int(seconds * SR / len(freqs))) / SR
        tone = amplitude * np.sin(2 * np.pi * f * t)
        ramp = int(0.005 * SR)
        fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        tone[:ramp] *= fade
        tone[-ramp:] *= fade[::-1]
        parts.append(tone)
    return quantized(np.concatenate(parts))


def speech_like(seconds=1.2, seed=0) -> np.ndarray:
    """Syllables: a jittered glottal pulse train with gliding pitch through three moving formant
    resonators, alternating with noise bursts (fricatives), under a 4 Hz syllable envelope."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 110 + 50 * t / seconds + 8 * np.sin(2 * np.pi * 3 * t)
    phase = np.cumsum(f0 / SR) + 0.002 * rng.standard_normal(n).cumsum() / np.sqrt(n)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    voiced = np.zeros(n)
    block = SR // 50  # formants move every 20 ms
    for start in range(0, n, block):
        seg = slice(start, min(n, start + block))
        out = pulses[seg]
        for base, width in ((600, 80), (1400, 120), (2600, 160)):
            fc = base * (1 + 0.3 * np.sin(2 * np.pi * 2.5 * start / SR + base))
            r = np.exp(-np.pi * width / SR)
            a = [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r]
            out = lfilter([1 - r], a, out)
        voiced[seg] = out
    voiced /= np.abs(voiced).max()
    noise = lfilter([1, -0.9], [1], rng.standard_normal(n))
    noise /= np.abs(noise).max()
    syllable = np.sin(2 * np.pi * 4 * t) ** 2
    fricative = (np.sin(2 * np.pi * 4 * t + np.pi / 2) ** 8) > 0.5
    signal = np.where(fricative, 0.3 * noise, voiced * (0.2 + 0.8 * syllable))
    return quantized(0.5 * signal)


def test_parse_transcripts_handles_comments_colons_and_folders(prepare):
    text = (
        "; Core Asterisk Sounds in English\n\n"
        "beep: [this is a simple beep tone]\n"
        "digits/1: one\n"
        "options: You have these options: Dial 1 now.\n"
        "letters/at: at [@]\n"
    )
    assert prepare.parse_transcripts(text) == {
        "beep": "[this is a simple beep tone]",
        "digits/1": "one",
        "options": "You have these options: Dial 1 now.",
        "letters/at": "at [@]",
    }


def test_parse_transcripts_refuses_bad_lines_with_their_number(prepare):
    with pytest.raises(ValueError, match="line 2: expected 'name: transcript'"):
        prepare.parse_transcripts("a: one\nno colon here\n")
    with pytest.raises(ValueError, match="line 3: prompt 'a' is listed twice"):
        prepare.parse_transcripts("a: one\n\na: again\n")


@pytest.mark.parametrize(
    "transcript, non_speech",
    [
        ("[this is a simple beep tone]", True),
        ("(1 second of silence)", True),
        ("<beep ascending>", True),
        (" [sound of monkeys screaming] ", True),
        ("at [@]", False),
        ("Please leave your message after the tone. (simple tone sound plays)", False),
        ("Activated.", False),
        ("[a] and [b]", False),
    ],
)
def test_non_speech_transcripts(prepare, transcript, non_speech):
    assert prepare.is_non_speech(transcript) is non_speech


def test_spoken_text_drops_annotations(prepare):
    assert prepare.spoken_text("at [@]") == "at"
    assert prepare.spoken_text("Press 1.  (simple tone sound plays)") == "Press 1."
    assert prepare.spoken_text("<beep> Hello  there") == "Hello there"


def test_generated_beeps_are_tones_and_speech_like_signals_are_not(prepare):
    assert prepare.tonal_fraction(beep()) > 0.9
    assert prepare.tonal_fraction(beep((440.0, 880.0), seconds=0.2)) > 0.9
    assert prepare.is_tone(beep(amplitude=0.05))
    for seed in range(3):
        assert prepare.tonal_fraction(speech_like(seed=seed)) < 0.2
    noise = quantized(0.1 * np.random.default_rng(0).standard_normal(SR))
    assert prepare.tonal_fraction(noise) == 0.0
    assert not prepare.is_tone(speech_like())


def test_a_beep_buried_in_noise_is_not_called_a_tone(prepare):
    """The test is about tonality, not about loudness: at 10 dB SNR the flatness is high."""
    signal = beep(amplitude=0.1)
    noisy = signal + 0.1 / np.sqrt(20) * np.random.default_rng(1).standard_normal(len(signal))
    assert not prepare.is_tone(noisy)


def test_spectral_flatness_of_white_noise_is_near_its_expected_value(prepare):
    """For white Gaussian noise each bin's power is ~ exponential, whose geometric / arithmetic
    mean ratio is exp(-euler_gamma) ~ 0.56."""
    noise = np.random.default_rng(2).standard_normal(4 * SR)
    flatness = prepare.spectral_flatness(noise)
    assert abs(np.median(flatness) - np.exp(-np.euler_gamma)) < 0.05


def test_drop_reasons_combine_transcript_and_audio_rules(prepare):
    assert prepare.drop_reasons("Activated.", speech_like()) == []
    assert prepare.drop_reasons("[this is a simple beep tone]", beep()) == [
        "non_speech_transcript", "tone"
    ]
    assert prepare.drop_reasons("(1 second of silence)", np.zeros(SR)) == [
        "non_speech_transcript", "silent"
    ]
    assert prepare.drop_reasons(None, speech_like()) == ["no_transcript"]
    assert prepare.drop_reasons("", 1e-4 * speech_like()) == ["no_transcript", "silent"]
    assert prepare.drop_reasons("Hello.", beep()) == ["tone"]


def test_utterance_ids_flatten_folders(prepare):
    assert prepare.utterance_id("digits/1") == "digits_1"
    assert prepare.utterance_id("vm-intro") == "vm-intro"


def test_missing_apt_tools_is_one_line_pointing_to_an_own_folder(prepare, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as info:
        prepare.fetch_packages(tmp_path)
    message = str(info.value)
    assert "\n" not in message and "apt-get and dpkg-deb" in message
    assert "LJSpeech-style folder" in message


def test_prepared_output_is_not_rebuilt_and_foreign_folders_are_refused(prepare, tmp_path,
                                                                          capsys):
    out = tmp_path / "asterisk"
    out.mkdir()
    summary = {"utterances": 3, "minutes": 0.1}
    (out / "prepared.json").write_text(json.dumps(summary))
    assert prepare.main(["--out", str(out), "--cache", str(tmp_path / "c")]) == summary
    assert "already prepared" in capsys.readouterr().out
    assert not (tmp_path / "c").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.wav").write_bytes(b"x")
    with pytest.raises(SystemExit, match="was not made by prepare.py"):
        prepare.main(["--out", str(foreign)])


def test_g722_decoding_recovers_an_encoded_tone(prepare):
    g722 = pytest.importorskip("G722")
    t = np.arange(SR) / SR
    tone = np.round(0.3 * 32767 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    encoded = g722.G722(SR, prepare.G722_BIT_RATE, use_numpy=False).encode(tone)
    assert len(encoded) == SR // 2  # 64 kbit/s: one byte per two samples
    decoded = prepare.decode_g722(bytes(encoded)).astype(np.float64)
    assert decoded.shape == (SR,)
    # the codec delays by a few samples; compare after the best lag
    errors = [np.sqrt(np.mean((decoded[lag + 1000:] - tone[1000:SR - lag]) ** 2))
              for lag in range(40)]
    rms = np.sqrt(np.mean(tone.astype(np.float64) ** 2))
    assert min(errors) < 0.05 * rms


def test_spectral_flatness_takes_hop_length(prepare):
    import inspect

    parameters = inspect.signature(prepare.spectral_flatness).parameters
    assert "hop_length" in parameters and "hop" not in parameters
