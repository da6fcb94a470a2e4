"""The ``seqflow`` command line: ``train``, ``eval``, ``sample``, ``vocode``, ``export``,
``forecast`` and ``bench``.

Expected failures (bad config, missing file, non-finite loss, unusable checkpoint) print one
line ``seqflow <command>: error: ...`` to stderr and exit with status 2; no traceback. Every
command that writes checks its output paths (:func:`seqflow.checks.check_output_path`) before
it loads or computes anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

from seqflow.checks import check_output_path
from seqflow.data.splits import SPLITS
from seqflow.forecasting import FORECAST_FORMATS, check_forecast_out, forecast_run
from seqflow.speech import (
    describe_distill,
    describe_eval,
    describe_export,
    describe_vocode,
    evaluate_audio_run,
    evaluate_distill_run,
    export_run,
    is_distill_run,
    results_name,
    sample_from_mel_file,
    vocode_files,
    write_listening_page,
)
from seqflow.train import (
    CheckpointError,
    NonFiniteLossError,
    TrainingInterrupted,
    evaluate_run,
    load_config,
    sample_chunks,
    train,
    write_json_atomic,
    write_sample_chunks,
)

BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "bench.py"
VOCODE_INPUTS = (
    "Audio inputs: wav/flac/ogg, mono, at the run's data.mel.sample_rate, samples on [-1, 1), "
    "at least one hop (data.mel.hop_length samples) long; another rate, several channels or "
    "float samples beyond [-1, 1) are refused unless --convert; truncated files are refused; "
    "silent or clipped files are skipped and named, as seqflow eval --data does. Mel inputs "
    "(.npy, float, shape (n_mels, frames), one frame per hop_length samples): the run's log-mel, "
    "i.e. the natural log of the magnitude (power 1) mel spectrum on a Slaney-scale, "
    "Slaney-normalized filterbank, floored at data.mel.log_floor: ln(max(mel, log_floor)), "
    "with the run's data.mel n_fft, win_length, hop_length, n_mels, f_min and f_max (defaults "
    "1024, 1024, 256, 80, 0, 8000 Hz, log_floor 1e-5). Mels below ln(log_floor), above the "
    "largest value audio on [-1, 1] can give, or with the statistics of a log10 or power mel "
    "are refused unless --no-mel-check."
)
DESCRIPTION = ("Autoregressive normalizing flows on audio and sequences: train a model from a "
               "YAML config, eval a run on held-out data, sample from it, vocode mels in one "
               "pass, export a vocoder to ONNX, "
               "forecast the future of a collection of series, bench the kernels.")
SAMPLE_FORMATS = (".npy", ".csv", ".safetensors")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqflow", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or resume) a model from a YAML config")
    p.add_argument("config", help="YAML config file, e.g. recipes/density/configs/moons.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--out", default=None,
                   help="run directory (default runs/<config name>); resumes if it holds a "
                        "checkpoint")

    p = sub.add_parser("eval", help="evaluate a run's NLL on a split and write metrics JSON")
    p.add_argument("run", help="run directory written by seqflow train")
    p.add_argument("--split", default=None, choices=SPLITS,
                   help="the split of the run's data to score (default test)")
    p.add_argument("--weights", default="auto", choices=["auto", "best", "final", "last"])
    p.add_argument("--data", default=None, metavar="DIR",
                   help="speech runs: score every audio file of DIR instead of a split; writes "
                        "RUN/metrics_data_<DIR name>_<digest of DIR's path>.json")

    # allow_abbrev=False: the old --num (a prefix of --num-samples) is an unknown argument
    p = sub.add_parser("sample", help="draw samples from a run's model", allow_abbrev=False)
    p.add_argument("run", help="run directory written by seqflow train")
    p.add_argument("--num-samples", type=int, default=None, metavar="N",
                   help="number of samples to draw")
    p.add_argument("--length", type=int, default=None,
                   help="samples per sequence (unconditional sequence models)")
    p.add_argument("--out", required=True,
                   help="output file: .npy, .csv or .safetensors (.wav with --mel-from)")
    p.add_argument("--mel-from", default=None, metavar="FILE",
                   help="speech runs: stream a waveform from this audio file's log-mel; writes "
                        "--out (wav) and a PNG of ground-truth vs sampled spectrograms. FILE: "
                        "wav/flac/ogg, mono, at the run's data.mel.sample_rate, samples on "
                        "[-1, 1), at least one hop long; other rates, channels, a truncated, "
                        "silent or clipped file are refused (see README 'Expected inputs')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="auto", choices=["auto", "best", "final", "last"])
    p.add_argument("--chunk", type=int, default=4096,
                   help="samples drawn per batch; memory is bounded by one chunk (default 4096)")

    p = sub.add_parser("vocode", help="speech runs with a one-pass model (sequence_iaf): "
                                      "waveforms from mels, batched, with quality metrics",
                       description=VOCODE_INPUTS)
    p.add_argument("run", help="run directory written by seqflow train")
    p.add_argument("inputs", nargs="+", metavar="FILE",
                   help="audio files (.wav/.flac/.ogg; their log-mel is vocoded and they are "
                        "the reference) or saved log-mels .npy of shape (n_mels, frames)")
    p.add_argument("--convert", action="store_true",
                   help="resample audio at another rate, mix several channels down to their "
                        "mean and clip float samples beyond [-1, 1); each conversion is printed "
                        "and recorded per file in metrics.json (without it such files are "
                        "refused)")
    p.add_argument("--no-mel-check", action="store_true",
                   help="vocode .npy mels whose value statistics do not look like the expected "
                        "log-mel (recorded in metrics.json)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes DIR/NAME.wav, DIR/NAME.png, DIR/metrics.json and the listening "
                        "page DIR/index.html (inputs copied to DIR/original/)")
    p.add_argument("--seed", type=int, default=0, help="seeds the noise z ~ N(0, I)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="standard deviation of the noise (default 1)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="inputs generated together, zero-padded to the longest (default 4)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: torch's setting)")
    p.add_argument("--weights", default="auto", choices=["auto", "best", "final", "last"])
    p.add_argument("--no-metrics", action="store_true",
                   help="skip MR-STFT, LSD, MCD and F0 against reference audio")

    p = sub.add_parser("export", help="export a one-pass run's generator (mel, noise -> "
                                      "waveform) to ONNX and check it with onnxruntime")
    p.add_argument("run", help="run directory written by seqflow train")
    p.add_argument("--onnx", required=True, metavar="FILE", help="output .onnx file")
    p.add_argument("--weights", default="auto", choices=["auto", "best", "final", "last"])
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"],
                   help="torch.onnx.export(dynamo=True) (default) or the TorchScript tracer")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of the speed comparison (default: torch's setting)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per engine (median)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="clip the test mel to this many frames")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("forecast", help="forecast every series of a long-format file (or folder "
                                        "of CSV files) past its end with a series run",
                       allow_abbrev=False)
    p.add_argument("run", help="run directory of seqflow train with data.source: series")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="long-format .csv (item_id, timestamp, target...) or a folder of "
                        "per-series CSV files, with the run's columns and frequency")
    p.add_argument("--horizon", type=int, default=None, metavar="H",
                   help="steps to forecast (default: the run's data.horizon)")
    p.add_argument("--num-samples", type=int, default=100, metavar="N",
                   help="sample paths per series (default 100)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes DIR/forecasts.csv, paths.npy, fan_chart.png, forecast.json")
    p.add_argument("--format", dest="file_format", default="csv", choices=FORECAST_FORMATS,
                   help="table format (parquet needs pyarrow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="auto", choices=["auto", "best", "final", "last"])

    p = sub.add_parser("bench", help="run tools/bench.py (arguments are passed through)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _train_out(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else Path("runs") / Path(args.config).stem


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _cmd_train(args: argparse.Namespace) -> int:

    cfg = load_config(args.config, args.overrides)
    out = _train_out(args)
    result = train(cfg, out)
    if _is_main_process():
        val = result.val
        summary = f"step {result.step}"
        if "bits_per_dim" in val:
            summary += f", val NLL {val['nll']:.4f} nats ({val['bits_per_dim']:.4f} bits/dim)"
        if result.resumed_from is not None:
            summary += f", resumed from {result.resumed_from.name}"
        if result.skipped:
            summary += f", {result.skipped} non-finite step(s) skipped"
        print(f"seqflow train: {summary}; {result.steps_per_second:.1f} steps/s, "
              f"{result.samples_per_second:.0f} samples/s; run in {out}")
    return 0


def _is_speech_run(run: str) -> bool:

    config = Path(run) / "config.yaml"
    return config.is_file() and load_config(config).data.source == "audio"


def _write_eval(args: argparse.Namespace, metrics: dict, line: str) -> int:
    """Write a speech run's ``metrics_<split>.json`` and ``per_file_<split>.json``; print."""

    name = results_name(args.split, args.data)
    files = metrics.pop("files")
    run = Path(args.run)
    write_json_atomic(metrics, run / f"metrics_{name}.json")
    write_json_atomic({"units": metrics["units"], "files": files}, run / f"per_file_{name}.json")
    print(f"seqflow eval: {line}")
    print(f"seqflow eval: wrote {run / f'metrics_{name}.json'} and per-file numbers in "
          f"{run / f'per_file_{name}.json'}")
    return 0


def _cmd_eval_speech(args: argparse.Namespace) -> int:

    metrics = evaluate_audio_run(args.run, args.split, args.weights, args.data)
    return _write_eval(args, metrics, describe_eval(metrics))


def _cmd_eval_distill(args: argparse.Namespace) -> int:

    metrics = evaluate_distill_run(args.run, args.split, args.weights, args.data)
    return _write_eval(args, metrics, describe_distill(metrics))


def _cmd_eval(args: argparse.Namespace) -> int:

    if args.data is not None and args.split is not None:
        raise ValueError(f"--split {args.split} and --data {args.data} both choose what to "
                         "score (--data: every file of the folder); give one of them")
    args.split = args.split or "test"
    if is_distill_run(args.run) and _is_speech_run(args.run):
        return _cmd_eval_distill(args)
    if _is_speech_run(args.run):
        return _cmd_eval_speech(args)
    if args.data is not None:
        raise ValueError(f"--data applies to speech runs (data.source: audio); {args.run} is "
                         "not one")
    metrics = evaluate_run(args.run, args.split, args.weights)
    write_json_atomic(metrics, Path(args.run) / f"metrics_{args.split}.json")
    print(json.dumps(metrics))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:

    if args.mel_from is not None:
        if args.num_samples is not None or args.length is not None:
            raise ValueError("--mel-from draws one waveform as long as the file; drop "
                             "--num-samples and --length")
        result = sample_from_mel_file(args.run, args.mel_from, args.out, args.seed,
                                      args.weights)
        how = "generated in one pass" if result["one_pass"] else "streamed"
        print(f"seqflow sample: {how} {result['seconds_of_audio']:.2f} s of audio in "
              f"{result['seconds']:.1f} s (real-time factor {result['rtf']:.2f}); wrote "
              f"{result['out']} and {result['png']}"
              + ("; `seqflow vocode` does this for many files at once, with quality metrics"
                 if result["one_pass"] else ""))
        return 0
    if args.num_samples is None:
        raise ValueError("give --num-samples (or --mel-from FILE for a speech run)")
    chunks = sample_chunks(args.run, args.num_samples, args.seed, args.weights, args.length,
                           args.chunk)
    shape = write_sample_chunks(chunks, args.num_samples, args.out)
    print(f"seqflow sample: wrote {shape} samples to {args.out}")
    return 0


def _cmd_vocode(args: argparse.Namespace) -> int:

    summary = vocode_files(args.run, args.inputs, args.out, seed=args.seed,
                           temperature=args.temperature, batch_size=args.batch_size,
                           weights=args.weights, threads=args.threads,
                           metrics=not args.no_metrics, convert=args.convert,
                           mel_check=not args.no_mel_check,
                           report=lambda line: print(f"seqflow vocode: {line}",
                                                     file=sys.stderr))
    page = write_listening_page(args.out)
    print(f"seqflow vocode: {describe_vocode(summary, args.out)} and the listening page {page}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:

    report = export_run(args.run, args.onnx, weights=args.weights, exporter=args.exporter,
                        threads=args.threads, repeats=args.repeats, max_frames=args.max_frames,
                        seed=args.seed)
    print(f"seqflow export: {describe_export(report)}")
    return 0


def _cmd_forecast(args: argparse.Namespace) -> int:
    record = forecast_run(args.run, args.data, args.horizon, args.num_samples, args.out,
                          seed=args.seed, weights=args.weights, file_format=args.file_format)
    print(f"seqflow forecast: {len(record['item_ids'])} series x {record['horizon']} steps x "
          f"{record['num_samples']} paths ({record['freq']}); wrote {record['table']}, "
          f"paths.npy, fan_chart.png and forecast.json in {args.out}")
    for note in record["notes"]:
        print(f"seqflow forecast: note: {note}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if not BENCH_SCRIPT.is_file():
        raise FileNotFoundError(
            f"the benchmark tool {BENCH_SCRIPT} is missing; seqflow bench needs a source checkout"
        )
    return subprocess.call([sys.executable, str(BENCH_SCRIPT), *args.args])


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse (one line) an output path of ``args.command`` that could not be written."""
    if args.command == "train":
        check_output_path(_train_out(args), "--out", folder=True)
    elif args.command == "eval":
        check_output_path(args.run, "the run directory", folder=True)
    elif args.command == "sample":
        if args.mel_from is not None:
            out = check_output_path(args.out, "--out", (".wav",))
            check_output_path(out.with_suffix(".png"), "the spectrogram PNG beside --out")
            if out.resolve() == Path(args.mel_from).resolve():
                raise ValueError(f"--out {out} would overwrite --mel-from; choose another --out")
        else:
            check_output_path(args.out, "--out", SAMPLE_FORMATS)
    elif args.command == "vocode":
        check_output_path(args.out, "--out", folder=True)
    elif args.command == "export":
        check_output_path(args.onnx, "--onnx", (".onnx",))
    elif args.command == "forecast":
        check_forecast_out(args.out, args.file_format)


COMMANDS = {"train": _cmd_train, "eval": _cmd_eval, "sample": _cmd_sample,
            "vocode": _cmd_vocode, "export": _cmd_export, "forecast": _cmd_forecast,
            "bench": _cmd_bench}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"seqflow: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqflow`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after "bench" belongs to tools/bench.py, even -h
        args = argparse.Namespace(command="bench", args=argv[1:])
    else:
        args = _parser().parse_args(argv)

    expected = (ValueError, OSError, CheckpointError, NonFiniteLossError)
    if not _is_main_process():  # under accelerate launch, one process reports the error
        expected_quiet = True
    else:
        expected_quiet = False
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        _check_outputs(args)
        return COMMANDS[args.command](args)
    except TrainingInterrupted as err:
        if not expected_quiet:
            print(f"seqflow {args.command}: {err}", file=sys.stderr)
        return 130
    except expected as err:
        if not expected_quiet:
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"seqflow {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqflow {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
