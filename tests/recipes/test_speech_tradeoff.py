"""recipes/speech/tradeoff.py at tiny sizes: the four timed methods per thread count, the
real-time factors, the JSON, plot and table, and the refusals of swapped runs."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
from speech_runs import HOP, SR, train_tiny, write_corpus

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "speech" / "tradeoff.py"


def load():
    spec = importlib.util.spec_from_file_location("speech_tradeoff", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tradeoff = load()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tradeoff")
    corpus = write_corpus(root / "corpus")
    return {"student": train_tiny(corpus, root / "iaf"),
            "teacher": train_tiny(corpus, root / "maf", "sequence_maf")}


def test_times_the_four_methods_and_writes_json_plot_and_table(runs, tmp_path):
    report = tradeoff.measure(runs["teacher"], runs["student"], tmp_path, frames=3, repeats=3,
                              threads=(1,))
    rows = report["rows"]
    assert [(r["model"], r["direction"], r["pass"]) for r in rows] == list(tradeoff.METHODS)
    clip_seconds = 3 * HOP / SR
    assert report["clip"]["seconds"] == pytest.approx(clip_seconds)
    for row in rows:
        assert row["threads"] == 1 and len(row["times"]) == 3
        assert row["seconds"] == statistics.median(row["times"])
        assert row["rtf"] == pytest.approx(row["seconds"] / clip_seconds)
        assert (row["pass"] == "streaming") == ("stream_threads" in row)
    assert json.loads((tmp_path / "tradeoff.json").read_text())["rows"] == rows
    assert (tmp_path / "tradeoff.png").stat().st_size > 1000
    table = tradeoff.markdown(report).splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("| teacher | sampling |")


def test_swapped_runs_are_refused(runs, tmp_path):
    with pytest.raises(ValueError, match="must be a mel-conditioned sequence_maf"):
        tradeoff.measure(runs["student"], runs["student"], tmp_path, frames=2, repeats=1)
    with pytest.raises(ValueError, match="seqflow sample"):
        tradeoff.measure(runs["teacher"], runs["teacher"], tmp_path, frames=2, repeats=1)
