"""Build an LJSpeech-style speech corpus from Asterisk's English core prompts.

Source: the Debian packages ``asterisk-core-sounds-en-g722`` (the prompts of one speaker,
Allison Smith, as 16 kHz G.722) and ``asterisk-core-sounds-en`` (their transcripts in
``core-sounds-en.txt.gz``), both CC-BY-SA-3.0. Fetched with ``apt-get download`` into a cache
folder (no installation), unpacked with ``dpkg-deb -x``, decoded with the PyPI package ``G722``.

Dropped prompts (rule, checked for every prompt; a prompt is dropped when any part fires):

* ``non_speech_transcript``: the whole transcript is one annotation in ``[...]``, ``(...)`` or
  ``<...>`` (beeps, tones, "(1 second of silence)", "[sound of monkeys screaming]");
* ``no_transcript``: the prompt has no (or an empty) transcript line;
* ``silent``: decoded peak below ``SILENCE_PEAK`` (-60 dBFS);
* ``tone``: at least ``TONE_FRAMES`` of the active frames (within 20 dB of the loudest) have a
  spectral flatness (geometric over arithmetic mean of the power spectrum; Gray & Markel 1974)
  below ``TONE_FLATNESS`` (-45 dB). Pure or two-frequency beeps sit near 0.9-1.0; on these
  prompts speech stayed at or below 0.4.

Kept prompts become ``wavs/<name>.wav`` (16-bit PCM, 16 kHz mono; ``/`` in names becomes ``_``)
and ``metadata.csv`` lines ``id|transcript|transcript without [..]/(..)/<..> annotations``. The
result is checked with :func:`seqflow.data.audio.scan_audio` (no file may be skipped) and
summarized in ``prepared.json``. A folder that holds ``prepared.json`` is not rebuilt.

Usage: ``python recipes/speech/prepare.py [--out data/speech/asterisk] [--cache DIR] [--force]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from seqflow.data.audio import AudioConfig, scan_audio

PACKAGES = ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en")
TRANSCRIPT_FILE = "core-sounds-en.txt"
SAMPLE_RATE = 16000
G722_BIT_RATE = 64000  # 8000 bytes per second of 16 kHz audio
SILENCE_PEAK = 1e-3
TONE_FLATNESS = 10 ** -4.5
TONE_FRAMES = 0.75
LICENSE_NOTE = (
    "Recordings: Allison Smith (Asterisk core sounds, English), CC-BY-SA-3.0,\n"
    "https://creativecommons.org/licenses/by-sa/3.0/\n"
    f"From the Debian packages {PACKAGES[0]} and {PACKAGES[1]}.\n"
    "Converted by seqflow's recipes/speech/prepare.py: G.722 decoded to 16-bit PCM WAV,\n"
    "tone and silence prompts removed. The Debian copyright file follows.\n\n"
)
MISSING_TOOLS = (
    "prepare.py: needs apt-get and dpkg-deb (Debian/Ubuntu) to fetch the Asterisk prompts; "
    "elsewhere, use your own LJSpeech-style folder (wavs/*.wav + metadata.csv) or any folder of "
    "wav/flac/ogg files as the speech data root instead"
)

_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_WHOLE_ANNOTATION = re.compile(r"\s*(\[[^\]]*\]|\([^)]*\)|<[^>]*>)\s*")


# pure pieces ---------------------------------------------------------------------------------


def parse_transcripts(text: str, origin: str = TRANSCRIPT_FILE) -> dict[str, str]:
    """``name: transcript`` lines -> ``{name: transcript}``; ``;`` comments and blank lines are
    skipped, the first ``:`` separates (transcripts may contain more)."""
    transcripts: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        name, sep, transcript = stripped.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise ValueError(f"{origin}: line {number}: expected 'name: transcript', got "
                             f"{stripped[:60]!r}")
        if name in transcripts:
            raise ValueError(f"{origin}: line {number}: prompt {name!r} is listed twice")
        transcripts[name] = transcript.strip()
    return transcripts


def is_non_speech(transcript: str) -> bool:
    """True when the whole transcript is one ``[...]``, ``(...)`` or ``<...>`` annotation."""
    return _WHOLE_ANNOTATION.fullmatch(transcript) is not None


def spoken_text(transcript: str) -> str:
    """The transcript without bracketed annotations, whitespace collapsed."""
    return " ".join(_ANNOTATION.sub(" ", transcript).split())


def spectral_flatness(audio: np.ndarray, n_fft: int = 512, hop_length: int = 128,
                      active_db: float = 20.0) -> np.ndarray:
    """Flatness of each active frame of ``audio`` ``(time,)``: geometric / arithmetic mean of the
    periodic-Hann power spectrum. Active frames are within ``active_db`` of the loudest."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.shape[0] < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.shape[0]))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop_length] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    if energy.max() <= 0:
        return np.zeros(0)
    power = power[energy >= energy.max() * 10 ** (-active_db / 10)] + 1e-30
    return np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)


def tonal_fraction(audio: np.ndarray) -> float:
    """Share of active frames whose spectral flatness is below ``TONE_FLATNESS``."""
    flatness = spectral_flatness(audio)
    return float(np.mean(flatness < TONE_FLATNESS)) if flatness.size else 0.0


def is_tone(audio: np.ndarray) -> bool:
    return tonal_fraction(audio) >= TONE_FRAMES


def drop_reasons(transcript: str | None, audio: np.ndarray) -> list[str]:
    """Every rule that drops this prompt (empty: keep). ``audio`` is float on [-1, 1)."""
    reasons = []
    if not transcript:
        reasons.append("no_transcript")
    elif is_non_speech(transcript):
        reasons.append("non_speech_transcript")
    if audio.size == 0 or np.abs(audio).max() < SILENCE_PEAK:
        reasons.append("silent")
    elif is_tone(audio):
        reasons.append("tone")
    return reasons


def utterance_id(name: str) -> str:
    return name.replace("/", "_")


# fetching and decoding -----------------------------------------------------------------------


def _apt_download(package: str, cache: Path) -> None:
    result = subprocess.run(["apt-get", "download", package], cwd=cache, capture_output=True,
                            text=True)
    if result.returncode == 0:
        return
    unknown = any(s in result.stderr for s in ("Unable to locate package", "Can't select",
                                               "has no installation candidate"))
    if unknown and os.geteuid() == 0:
        print("apt-get does not know the package yet: running apt-get update", flush=True)
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        result = subprocess.run(["apt-get", "download", package], cwd=cache,
                                capture_output=True, text=True)
        if result.returncode == 0:
            return
    hint = " (run `sudo apt-get update` first?)" if unknown else ""
    message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"
    raise SystemExit(f"prepare.py: apt-get download {package} failed{hint}: {message}")


def fetch_packages(cache: Path) -> list[Path]:
    """The ``.deb`` of each package, downloaded into ``cache`` unless already there."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SystemExit(MISSING_TOOLS)
    cache.mkdir(parents=True, exist_ok=True)
    debs = []
    for package in PACKAGES:
        found = sorted(cache.glob(f"{package}_*.deb"))
        if not found:
            print(f"downloading {package} with apt-get", flush=True)
            _apt_download(package, cache)
            found = sorted(cache.glob(f"{package}_*.deb"))
            if not found:
                raise SystemExit(f"prepare.py: apt-get download {package} left no .deb in "
                                 f"{cache}")
        debs.append(found[-1])
    return debs


def unpack(deb: Path, cache: Path) -> Path:
    """``dpkg-deb -x`` into ``cache/<deb stem>`` (once; a finished unpack leaves a marker)."""
    target = cache / deb.stem
    if not (target / ".unpacked").is_file():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        (target / ".unpacked").write_text(deb.name)
    return target


def find_prompts(tree: Path) -> tuple[Path, dict[str, Path]]:
    """The folder holding the ``.g722`` prompts and ``{name: path}`` (names relative to it,
    without the suffix, e.g. ``digits/1``)."""
    files = sorted(tree.rglob("*.g722"))
    if not files:
        raise SystemExit(f"prepare.py: no .g722 prompts under {tree}")
    top = Path(os.path.commonpath([f.parent for f in files]))
    return top, {f.relative_to(top).with_suffix("").as_posix(): f for f in files}


def read_transcripts(tree: Path) -> dict[str, str]:
    candidates = sorted(tree.rglob(f"{TRANSCRIPT_FILE}*"))
    if not candidates:
        raise SystemExit(f"prepare.py: no {TRANSCRIPT_FILE}[.gz] under {tree}")
    path = candidates[0]
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    return parse_transcripts(text, origin=str(path))


def decode_g722(data: bytes) -> np.ndarray:
    """16 kHz, 64 kbit/s G.722 bytes -> int16 samples (two per byte)."""
    import G722  # the PyPI package "G722"; imported here so the pure pieces need no codec

    samples = G722.G722(SAMPLE_RATE, G722_BIT_RATE, use_numpy=False).decode(data)
    return np.frombuffer(samples, dtype=np.int16).copy()


# main ----------------------------------------------------------------------------------------


def build(out: Path, cache: Path) -> dict:
    debs = fetch_packages(cache)
    trees = [unpack(deb, cache) for deb in debs]
    top, prompts = find_prompts(trees[0])
    transcripts = read_transcripts(trees[1])
    ids = {utterance_id(name) for name in prompts}
    if len(ids) != len(prompts):
        raise SystemExit("prepare.py: two prompt names map to one utterance id")

    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "wavs").mkdir(parents=True)
    print(f"decoding {len(prompts)} prompts from {top}", flush=True)
    kept, dropped, samples = [], [], 0
    for name, path in prompts.items():
        pcm = decode_g722(path.read_bytes())
        audio = pcm.astype(np.float64) / 32768.0
        transcript = transcripts.get(name)
        reasons = drop_reasons(transcript, audio)
        if reasons:
            dropped.append({"name": name, "reasons": reasons, "transcript": transcript,
                            "seconds": round(len(pcm) / SAMPLE_RATE, 3)})
            continue
        if "|" in transcript:
            raise SystemExit(f"prepare.py: transcript of {name} contains '|': {transcript!r}")
        uid = utterance_id(name)
        sf.write(partial / "wavs" / f"{uid}.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
        kept.append((uid, transcript, spoken_text(transcript)))
        samples += len(pcm)
    lines = [f"{uid}|{' '.join(text.split())}|{spoken}\n" for uid, text, spoken in sorted(kept)]
    (partial / "metadata.csv").write_text("".join(lines), encoding="utf-8")
    copyright_files = sorted(trees[0].rglob("copyright"))
    notice = copyright_files[0].read_text(errors="replace") if copyright_files else ""
    (partial / "LICENSE.txt").write_text(LICENSE_NOTE + notice)

    corpus = scan_audio(partial, AudioConfig(sample_rate=SAMPLE_RATE, max_bad_fraction=0.0))
    if corpus.report.skipped or len(corpus.items) != len(kept):
        raise SystemExit(f"prepare.py: the written corpus fails its own scan: "
                         f"{corpus.report.summary()}")
    counts: dict[str, int] = {}
    for entry in dropped:
        for reason in entry["reasons"]:
            counts[reason] = counts.get(reason, 0) + 1
    summary = {
        "packages": [deb.name for deb in debs],
        "prompts": len(prompts),
        "transcripts": len(transcripts),
        "transcripts_without_prompt": sorted(set(transcripts) - set(prompts)),
        "utterances": len(kept),
        "minutes": round(samples / SAMPLE_RATE / 60, 2),
        "dropped": len(dropped),
        "dropped_by_reason": dict(sorted(counts.items())),
        "dropped_prompts": dropped,
        "rule": {"silence_peak": SILENCE_PEAK, "tone_flatness": TONE_FLATNESS,
                 "tone_frames": TONE_FRAMES},
    }
    (partial / "prepared.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/speech/asterisk"),
                        help="output folder (default: data/speech/asterisk)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the .deb files are downloaded and unpacked "
                             "(default: <out>/../downloads)")
    parser.add_argument("--force", action="store_true", help="rebuild an existing output")
    args = parser.parse_args(argv)
    out, cache = args.out, args.cache or args.out.parent / "downloads"
    marker = out / "prepared.json"
    if marker.is_file() and not args.force:
        summary = json.loads(marker.read_text())
        print(f"{out} is already prepared ({summary['utterances']} utterances, "
              f"{summary['minutes']} min); nothing to do (--force rebuilds)")
        return summary
    if out.exists() and not marker.is_file() and any(out.iterdir()) and not args.force:
        raise SystemExit(f"prepare.py: {out} exists and was not made by prepare.py; choose "
                         "another --out or pass --force to replace it")
    start = time.perf_counter()
    summary = build(out, cache)
    print(f"wrote {summary['utterances']} utterances, {summary['minutes']} min, to {out} "
          f"({time.perf_counter() - start:.1f} s); dropped {summary['dropped']}: "
          + ", ".join(f"{n} {r}" for r, n in summary["dropped_by_reason"].items()))
    for entry in summary["dropped_prompts"]:
        print(f"  dropped {entry['name']} ({'+'.join(entry['reasons'])}): {entry['transcript']}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
