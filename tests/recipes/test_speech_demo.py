"""`make demo`'s code path (recipes/speech/demo.py) end to end on a tiny corpus and tiny
configs: teacher, LPC baselines, distilled student, vocoding, trade-off, table and files."""

from __future__ import annotations

import json
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


def test_demo_runs_end_to_end_and_reuses_finished_runs(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", count=8)
    teacher_cfg, student_cfg = write_configs(corpus, tmp_path)
    out = tmp_path / "demo"
    command = [sys.executable, str(DEMO), "--data", str(corpus), "--out", str(out),
               "--teacher-config", str(teacher_cfg), "--student-config", str(student_cfg),
               "--lpc-order", "4", "--vocode", "2", "--frames", "3"]
    first = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "| teacher test LL" in first.stdout and "speed-up" in first.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["lpc"]) == {"lpc-4", "adaptive-lpc-4"}
    assert len(list((out / "vocoded").glob("*.wav"))) == 2
    assert len(list((out / "vocoded").glob("*.png"))) == 2
    assert (out / "tradeoff" / "tradeoff.png").is_file()
    assert (out / "summary.md").read_text().startswith("| quantity | value |")
    for run in ("teacher", "student"):
        assert (out / run / "final").is_dir()
    # a second call trains nothing more: the finished runs are reused
    steps = (out / "student" / "train_log.jsonl").read_text()
    second = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (out / "student" / "train_log.jsonl").read_text() == steps
    assert "reusing the finished run" in second.stdout
    # a changed flag is not ignored: the finished teacher of another config is refused
    third = subprocess.run([*command, "--set", "train.lr=0.01"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert third.returncode != 0
    assert third.stderr.strip().splitlines()[-1].startswith("demo.py: error: ")
    assert "holds a finished run of another config (train.lr)" in third.stderr
