"""The seqflow speech demo: a MAF teacher, its one-pass IAF student, and the trade-off.

Offline on a CPU, in about ten minutes on two cores (``make demo``):

1. prepares the Asterisk speech corpus (``prepare.py``; cached in ``data/speech/asterisk``),
2. trains a small mel-conditioned Gaussian WaveNet teacher (``configs/teacher_demo.yaml``)
   and scores it on the held-out utterances against linear prediction fitted on the training
   files,
3. distills it into a one-pass IAF student (``configs/student_demo.yaml``),
4. vocodes three held-out utterances with the student, streams the teacher's sample of the same
   utterances, and measures the real-time factors of teacher streaming sampling, student
   one-pass sampling, teacher one-pass density and student streaming density,
5. prints one table and writes wavs, spectrogram PNGs, the listening page
   ``vocoded/index.html`` (original, teacher and student players, spectrograms, metrics), the
   trade-off plot, ``summary.json`` and ``summary.md`` under ``--out``.

Every run is resumable and reused: a second call finds the finished runs and redoes only the
measurements. ``--data DIR`` trains on your own LJSpeech-style folder instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import baselines
import prepare
import soundfile as sf
import torch
import tradeoff

from seqflow.data.features import LogMel
from seqflow.metrics import speech_quality
from seqflow.speech import (
    evaluate_audio_run,
    mel_of_audio_file,
    sample_from_mel_file,
    score_utterances,
    summarize,
    vocode_files,
    write_listening_page,
)
from seqflow.train import finished_run, load_config, train, utterances

HERE = Path(__file__).resolve().parent


def train_run(config: Path, out: Path, overrides: list[str]) -> float:
    """Train (or resume) ``config`` into ``out``; wall-clock seconds. A finished run of the same
    config is reused as it is; one of another config is refused (:func:`finished_run`)."""
    cfg = load_config(config, overrides)
    if finished_run(out, cfg):
        print(f"reusing the finished run {out} of the same config (delete it to train again)")
        return 0.0
    start = time.perf_counter()
    train(cfg, out)
    return time.perf_counter() - start


def lpc_baselines(run: Path, order: int) -> dict[str, float]:
    """Test LL (nats/sample) of LPC(order) and its loudness-adaptive form, both fitted on the
    run's training files (``baselines.py`` fits and reports the whole family)."""
    cfg = load_config(run / "config.yaml")
    signals = [item["x"][0].double().numpy() for item in utterances(cfg, run, "train")]
    lpc = baselines.LPC.fit(signals, order)
    adaptive = baselines.AdaptiveLPC.fit(signals, lpc, cfg.data.mel.hop_length)
    test = utterances(cfg, run, "test")
    rows = {}
    for model in (lpc, adaptive):
        files = score_utterances(lambda x, mel, m=model: m.log_prob(x[0, 0].double().numpy()),
                                 test, progress=False, desc=model.name)
        rows[model.name] = summarize(files, cfg.data.dequantize)["nats_per_sample"]
    return rows


def held_out_wavs(run: Path, count: int) -> list[Path]:
    """``count`` test files of the run's split: the shortest above one second, by length."""
    cfg = load_config(run / "config.yaml")
    test = utterances(cfg, run, "test")
    items = sorted((test[i] for i in range(len(test))), key=lambda item: item["x"].shape[-1])
    long_enough = [item for item in items if item["x"].shape[-1] >= cfg.data.mel.sample_rate]
    root = Path(cfg.data.path)
    return [root / item["path"] for item in (long_enough or items)[:count]]


def stream_teacher(run: Path, wavs: list[Path], out: Path) -> dict[str, dict]:
    """The teacher's streamed sample (seed 0) of each of ``wavs`` as ``out/NAME.wav`` and
    ``out/NAME.png``, each record with the speech-quality keys against the same reference the
    vocoded files are scored on (the audio trimmed to ``frames * hop``); by file stem."""
    logmel = LogMel(load_config(run / "config.yaml").data.mel)
    out.mkdir(parents=True, exist_ok=True)
    samples = {}
    for wav in wavs:
        record = sample_from_mel_file(run, wav, out / f"{wav.stem}.wav", progress=False)
        reference, _ = mel_of_audio_file(wav, logmel)
        written = torch.from_numpy(sf.read(record["out"], dtype="float32")[0])
        quality = speech_quality(written, reference, logmel.config.sample_rate)
        samples[wav.stem] = {"input": str(wav), "run": str(run), **record, **quality.to_dict()}
    return samples


def last_validation(run: Path) -> dict:
    """The last validation row of a run's training log."""
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    rows = [row for row in rows if any(key.startswith("val_") for key in row)]
    if not rows:
        raise ValueError(f"{run}/train_log.jsonl: no validation row; was the run trained?")
    return rows[-1]


def table(summary: dict) -> str:
    """The demo's result as a Markdown table."""
    lpc, vocoded = summary["lpc"], summary["vocoded"]
    rtf = {(r["model"], r["direction"], r["threads"]): r["rtf"]
           for r in summary["tradeoff"]["rows"]}
    one = min(r["threads"] for r in summary["tradeoff"]["rows"])
    speed_up = rtf["teacher", "sampling", one] / rtf["student", "sampling", one]
    val = summary["student_validation"]
    f0 = vocoded["total"].get("mean_f0_rmse_hz")
    f0 = "no frame voiced in both" if f0 is None else f"{f0:.1f} Hz"
    lines = [
        "| quantity | value |", "|---|---:|",
        f"| teacher test LL, {summary['test_utterances']} held-out utterances | "
        f"{summary['teacher_ll']:.3f} nats/sample |",
        *(f"| {name} test LL (fitted on the training files) | {value:.3f} nats/sample |"
          for name, value in lpc.items()),
        f"| student KL(student ‖ teacher), validation | {val['val_kl']:.3f} nats/sample |",
        f"| teacher LL of student samples, validation | {val['val_teacher_ll']:.3f} "
        "nats/sample |",
        f"| student vs ground truth, {vocoded['total']['files']} held-out utterances: MR-STFT "
        f"| {vocoded['total'].get('mean_mr_stft', float('nan')):.3f} |",
        f"| ... RMS ratio (vocoded / truth) | "
        f"{vocoded['total'].get('mean_rms_ratio', float('nan')):.2f} |",
        f"| ... mel-cepstral distortion | {vocoded['total'].get('mean_mcd_db', float('nan')):.2f}"
        " dB |",
        f"| ... V/UV error rate | "
        f"{vocoded['total'].get('mean_vuv_error_rate', float('nan')):.2f} |",
        f"| ... F0 RMSE (frames voiced in both) | {f0} |",
        *(f"| real-time factor, {m} {d} ({k}), {one} thread | {rtf[m, d, one]:.3g} |"
          for m, d, k in tradeoff.METHODS),
        f"| student sampling speed-up over teacher sampling, {one} thread | "
        f"{speed_up:.1f}x |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--data", type=Path, default=None,
                        help="an LJSpeech-style folder (default: prepare the Asterisk corpus)")
    parser.add_argument("--teacher-config", type=Path, default=HERE / "configs/teacher_demo.yaml")
    parser.add_argument("--student-config", type=Path, default=HERE / "configs/student_demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override both configs (repeatable)")
    parser.add_argument("--lpc-order", type=int, default=32)
    parser.add_argument("--vocode", type=int, default=3, help="held-out utterances to vocode")
    parser.add_argument("--frames", type=int, default=32,
                        help="trade-off clip length in mel frames (32 = 0.512 s)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    data = args.data
    if data is None:
        data = Path("data/speech/asterisk")
        prepare.main(["--out", str(data)])
    teacher, student = out / "teacher", out / "student"
    common = [f"data.path={data}", *args.overrides]
    seconds = {"teacher_training": train_run(args.teacher_config, teacher, common)}
    scored = evaluate_audio_run(teacher, "test")
    lpc = lpc_baselines(teacher, args.lpc_order)
    seconds["student_training"] = train_run(
        args.student_config, student, [*common, f"train.distill.teacher={teacher}"])
    held_out = held_out_wavs(teacher, args.vocode)
    vocoded = vocode_files(student, held_out, out / "vocoded")
    streaming = time.perf_counter()
    streamed = stream_teacher(teacher, held_out, out / "vocoded" / "teacher")
    seconds["teacher_streaming"] = time.perf_counter() - streaming
    write_listening_page(out / "vocoded", streamed, teacher_note="Seed 0, the same utterances "
                         "as the student; scored against the same reference.")
    speed = tradeoff.measure(teacher, student, out / "tradeoff", frames=args.frames)
    seconds["total"] = time.perf_counter() - start

    summary = {"teacher_ll": scored["nats_per_sample"], "test_utterances": scored["utterances"],
               "units": scored["units"], "lpc": lpc,
               "student_validation": last_validation(student), "vocoded": vocoded,
               "teacher_streamed": list(streamed.values()),
               "tradeoff": speed, "seconds": seconds}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = table(summary)
    (out / "summary.md").write_text(text + "\n")
    print(f"\n{text}\n\n{scored['units']}")
    print(f"wrote {out}/vocoded (wavs, PNGs, metrics.json, the listening page index.html), "
          f"{out}/tradeoff/tradeoff.png and "
          f"{out}/summary.md in {seconds['total'] / 60:.1f} min")
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as err:  # bad input or a run of another config: one line
        sys.exit(f"demo.py: error: {' '.join(str(err).split())}")
