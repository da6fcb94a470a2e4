"""`make demo`'s code path (recipes/speech/demo.py) end to end on a tiny corpus and tiny
configs: teacher, LPC baselines, distilled student, vocoding, trade-off, table and files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from speech_runs import tiny_config, write_corpus

from seqflow.train.config import config_to_dict

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "speech" / "demo.py"


def write_configs(corpus: Path, root: Path) -> tuple[Path, Path]:
    def raw(kind: str) -> dict:
        cfg = tiny_config(corpus, kind)
        return config_to_dict(cfg)

    teacher = raw("sequence_maf")
    teacher["train"].update(max_steps=3, eval_every=3)
    student = raw("sequence_iaf")
    student["train"].update(max_steps=2, eval_every=2, task="distill",
                            distill={"teacher": "set by the demo",
                                     "stft_resolutions": "64,16,64;128,32,128"})
    paths = []
    for name, cfg in (("teacher", teacher), ("student", student)):
        for section in cfg.values():
            for key, value in list(section.items()):
                if value is None or isinstance(value, tuple):
                    section.pop(key)
                elif isinstance(value, Path):
                    section[key] = str(value)
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        paths.append(path)
    return paths[0], paths[1]


def printed_table(stdout: str) -> list[tuple[str, str]]:
    """``(quantity, value)`` of every row of the Markdown table the demo prints."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert lines[:2] == ["| quantity | value |", "|---|---:|"], lines[:2]
    rows = []
    for line in lines[2:]:
        quantity, value = line.strip().strip("|").rsplit("|", 1)
        rows.append((quantity.strip(), value.strip()))
    return rows


def expected_rows(summary: dict) -> dict[str, tuple[float | None, str]]:
    """``{quantity: (number, unit)}`` the table must show, read from ``summary.json``."""
    total = summary["vocoded"]["total"]
    validation = summary["student_validation"]
    rows = summary["tradeoff"]["rows"]
    one = min(row["threads"] for row in rows)
    rtf = {(r["model"], r["direction"]): r for r in rows if r["threads"] == one}
    expected = {
        f"teacher test LL, {summary['test_utterances']} held-out utterances":
            (summary["teacher_ll"], "nats/sample"),
        **{f"{name} test LL (fitted on the training files)": (value, "nats/sample")
           for name, value in summary["lpc"].items()},
        "student KL(student ‖ teacher), validation": (validation["val_kl"], "nats/sample"),
        "teacher LL of student samples, validation": (validation["val_teacher_ll"],
                                                      "nats/sample"),
        f"student vs ground truth, {total['files']} held-out utterances: MR-STFT":
            (total["mean_mr_stft"], ""),
        "... RMS ratio (vocoded / truth)": (total["mean_rms_ratio"], ""),
        "... mel-cepstral distortion": (total["mean_mcd_db"], "dB"),
        "... V/UV error rate": (total["mean_vuv_error_rate"], ""),
        "... F0 RMSE (frames voiced in both)": (total.get("mean_f0_rmse_hz"), "Hz"),
        f"student sampling speed-up over teacher sampling, {one} thread":
            (rtf["teacher", "sampling"]["rtf"] / rtf["student", "sampling"]["rtf"], "x"),
    }
    for (model, direction), row in rtf.items():
        expected[f"real-time factor, {model} {direction} ({row['pass']}), {one} thread"] = \
            (row["rtf"], "")
    return expected


def agrees(printed: str, number: float | None, unit: str) -> bool:
    """Whether ``printed`` (e.g. ``2.936 nats/sample``, ``0.0931``, ``1.8x``) is ``number``
    rounded to the digits shown, with ``unit``; None must read 'no frame voiced in both'."""
    if number is None:
        return printed == "no frame voiced in both"
    match = re.fullmatch(r"(-?\d+(?:\.(\d+))?(?:e([-+]\d+))?) ?(.*)", printed)
    if match is None or match.group(4) != unit:
        return False
    decimals, exponent = len(match.group(2) or ""), int(match.group(3) or 0)
    half_digit = 0.5 * 10.0 ** (exponent - decimals)
    return abs(float(match.group(1)) - number) <= half_digit * (1 + 1e-9)


def check_table(stdout: str, out: Path) -> None:
    """The printed table holds exactly summary.json's numbers, and summary.md is that table."""
    summary = json.loads((out / "summary.json").read_text())
    rows = printed_table(stdout)
    expected = expected_rows(summary)
    assert sorted(q for q, _ in rows) == sorted(expected)
    wrong = [f"{q}: printed {v!r}, summary.json {expected[q][0]!r} {expected[q][1]}"
             for q, v in rows if not agrees(v, *expected[q])]
    assert not wrong, wrong
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert (out / "summary.md").read_text().splitlines() == table


def test_printed_numbers_are_checked_to_the_digits_shown():
    assert agrees("2.936 nats/sample", 2.93649, "nats/sample")
    assert not agrees("2.936 nats/sample", 2.9366, "nats/sample")
    assert not agrees("2.936 dB", 2.936, "nats/sample")
    assert agrees("9.31e-05", 9.3149e-05, "") and not agrees("9.31e-05", 9.32e-05, "")
    assert agrees("1.8x", 1.84, "x") and not agrees("1.8x", 1.86, "x")
    assert agrees("no frame voiced in both", None, "Hz")
    assert not agrees("nan", 0.5, "")


def test_demo_runs_end_to_end_and_reuses_finished_runs(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", count=8)
    teacher_cfg, student_cfg = write_configs(corpus, tmp_path)
    out = tmp_path / "demo"
    command = [sys.executable, str(DEMO), "--data", str(corpus), "--out", str(out),
               "--teacher-config", str(teacher_cfg), "--student-config", str(student_cfg),
               "--lpc-order", "4", "--vocode", "2", "--frames", "3"]
    first = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    check_table(first.stdout, out)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["lpc"]) == {"lpc-4", "adaptive-lpc-4"}
    assert len(list((out / "vocoded").glob("*.wav"))) == 2
    assert len(list((out / "vocoded").glob("*.png"))) == 2
    # the listening page plays the originals, the teacher's streamed samples and the student's
    page = (out / "vocoded" / "index.html").read_text(encoding="utf-8")
    assert page.count("<audio controls") == 2 * 3 and "No teacher sample" not in page
    assert len(list((out / "vocoded" / "teacher").glob("*.wav"))) == 2
    teacher = summary["teacher_streamed"]
    assert [Path(r["input"]).stem for r in teacher] == [Path(f["input"]).stem
                                                       for f in summary["vocoded"]["files"]]
    assert all(r["mcd_db"] > 0 and r["rms_ratio"] > 0 for r in teacher)
    assert (out / "tradeoff" / "tradeoff.png").is_file()
    for run in ("teacher", "student"):
        assert (out / run / "final").is_dir()
    # a second call trains nothing more: the finished runs are reused
    steps = (out / "student" / "train_log.jsonl").read_text()
    second = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    check_table(second.stdout, out)  # the speeds are measured again and written again
    assert (out / "student" / "train_log.jsonl").read_text() == steps
    assert "reusing the finished run" in second.stdout
    # a changed flag is not ignored: the finished teacher of another config is refused
    third = subprocess.run([*command, "--set", "train.lr=0.01"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert third.returncode != 0
    assert third.stderr.strip().splitlines()[-1].startswith("demo.py: error: ")
    assert "holds a finished run of another config (train.lr)" in third.stderr


def _untimed(summary: dict) -> dict:
    """The numbers of a demo summary that depend neither on the machine's speed nor on --out."""
    timed = {"wav", "png", "out", "batch_seconds", "rtf", "seconds", "run"}
    vocoded = [{k: v for k, v in f.items() if k not in timed} for f in summary["vocoded"]["files"]]
    teacher = [{k: v for k, v in f.items() if k not in timed} for f in summary["teacher_streamed"]]
    total = {k: v for k, v in summary["vocoded"]["total"].items() if k not in timed}
    return {"teacher_ll": summary["teacher_ll"], "lpc": summary["lpc"],
            "student_validation": summary["student_validation"], "vocoded": vocoded,
            "vocoded_total": total, "teacher_streamed": teacher}


def test_two_fresh_demo_runs_print_the_same_numbers_except_the_timings(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", count=8)
    teacher_cfg, student_cfg = write_configs(corpus, tmp_path)
    summaries = []
    for name in ("one", "two"):
        out = tmp_path / name
        done = subprocess.run(
            [sys.executable, str(DEMO), "--data", str(corpus), "--out", str(out),
             "--teacher-config", str(teacher_cfg), "--student-config", str(student_cfg),
             "--lpc-order", "4", "--vocode", "2", "--frames", "3"],
            capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        summaries.append(_untimed(json.loads((out / "summary.json").read_text())))
    assert summaries[0] == summaries[1]
