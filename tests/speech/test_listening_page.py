"""The listening page of ``seqflow vocode``: its structure read back with the standard library's
HTML parser (every link resolves inside the folder, one player per wav, the table's numbers are
metrics.json's, names are escaped), and the page rendered by headless Chromium where it is
installed (the browser's DOM holds the players; the screenshot shows the spectrograms)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from speech_runs import train_tiny, write_corpus

from seqflow.cli import main as cli
from seqflow.speech import sample_from_mel_file, write_listening_page
from seqflow.speech.listening import QUALITY_COLUMNS
from seqflow.speech.vocode import MEAN_KEYS

ODD = "it's <a&b> #1"  # a stem that needs HTML escaping and URL quoting


class Page(HTMLParser):
    """The tags, links, table cells and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.audio: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.rows: list[dict] = []
        self.sections: list[dict] = []
        self.text: list[str] = []
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])
        if tag == "section" and "id" in attrs:
            self.sections.append({"audio": [], "images": []})
        if tag == "audio":
            assert "controls" in attrs
            self.audio.append(attrs["src"])
            self.sections[-1]["audio"].append(attrs["src"])
        if tag == "img":
            self.images.append(attrs["src"])
            self.sections[-1]["images"].append(attrs["src"])
        if tag == "tr" and "data-model" in attrs:
            self.rows.append({"utterance": attrs["data-utterance"], "model": attrs["data-model"],
                              "cells": {}})
        if tag == "td" and "data-key" in attrs:
            self._cell = {"key": attrs["data-key"], "value": attrs.get("data-value"), "text": ""}

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"][self._cell["key"]] = self._cell
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def vocoded(tmp_path_factory):
    """A tiny student's vocoding of two files (one with an odd name) and a tiny teacher's
    streamed sample of one of them, in one folder. The vocoding runs without metrics (pYIN's
    first call is slow) and the test writes its own numbers into metrics.json: the page must
    show whatever that file holds."""
    root = tmp_path_factory.mktemp("listening")
    corpus = write_corpus(root / "corpus", count=4)
    student = train_tiny(corpus, root / "iaf")
    teacher = train_tiny(corpus, root / "maf", "sequence_maf")
    odd = root / "inputs" / f"{ODD}.wav"
    odd.parent.mkdir()
    shutil.copyfile(corpus / "utt01.wav", odd)
    inputs = [odd, corpus / "utt03.wav"]
    out = root / "vocoded"
    assert cli(["vocode", str(student), *map(str, inputs), "--out", str(out),
                "--no-metrics"]) == 0
    cli_page = (out / "index.html").read_text(encoding="utf-8")  # seqflow vocode writes it
    report = json.loads((out / "metrics.json").read_text())
    rng = np.random.default_rng(0)
    for record in report["files"]:
        record.update({key: float(rng.random() * 10) for key in MEAN_KEYS})
    report["files"][0]["f0_rmse_hz"] = None  # no frame voiced in both
    report["total"].update({f"mean_{key}": float(rng.random()) for key in MEAN_KEYS})
    (out / "metrics.json").write_text(json.dumps(report))
    (out / "teacher").mkdir()
    sample = sample_from_mel_file(teacher, inputs[1], out / "teacher" / "utt03.wav",
                                  progress=False)
    sample.update(run=str(teacher), mcd_db=float(rng.random()))
    page = write_listening_page(out, {"utt03": sample}, teacher_note="Seed 0.")
    return {"out": out, "page": page, "inputs": inputs, "cli_page": cli_page,
            "teacher": sample}


def test_the_table_columns_are_the_keys_vocode_averages():
    assert [key for key, _, _ in QUALITY_COLUMNS] == list(MEAN_KEYS)


def test_seqflow_vocode_writes_a_page_that_says_what_it_lacks(vocoded):
    words = " ".join(parse(vocoded["cli_page"]).text)
    assert "No teacher samples were given for this page" in words
    assert words.count("not computed (--no-metrics)") == 2 * len(MEAN_KEYS)


def test_every_link_resolves_inside_the_folder_and_each_wav_has_one_player(vocoded):
    out, page = vocoded["out"], vocoded["page"]
    text = page.read_text(encoding="utf-8")
    parsed = parse(text)
    assert not {"script", "link", "iframe", "object"} & set(parsed.tags)
    assert "@import" not in text and "url(" not in text
    for link in parsed.links:
        assert not urlparse(link).scheme and not link.startswith("/"), link
        target = (out / unquote(link)).resolve()
        assert target.is_file() and out.resolve() in target.parents, link
    played = [(out / unquote(src)).resolve() for src in parsed.audio]
    wavs = {p.resolve() for p in out.rglob("*.wav")}
    assert len(played) == len(set(played)) and set(played) == wavs
    assert len(wavs) == 2 + 1 + 2  # two originals, one teacher sample, two vocoded
    # per utterance: original, (teacher), student; the teacher's picture beside the student's
    odd, short = parsed.sections
    assert [unquote(s) for s in odd["audio"]] == [f"original/{ODD}.wav", f"{ODD}.wav"]
    assert [unquote(s) for s in short["audio"]] == ["original/utt03.wav", "teacher/utt03.wav",
                                                    "utt03.wav"]
    assert [unquote(s) for s in short["images"]] == ["utt03.png", "teacher/utt03.png"]
    for source in vocoded["inputs"]:
        assert (out / "original" / source.name).read_bytes() == source.read_bytes()
    words = " ".join(parsed.text)
    assert "No teacher sample was given for this utterance." in words and "Seed 0." in words


def test_names_are_escaped_and_the_table_holds_metrics_json(vocoded):
    out = vocoded["out"]
    text = vocoded["page"].read_text(encoding="utf-8")
    assert "<a&b>" not in text and ODD in " ".join(parse(text).text)
    report = json.loads((out / "metrics.json").read_text())
    rows = parse(text).rows
    students = [r for r in rows if r["model"] == "student"]
    assert [r["utterance"] for r in students] == [Path(f["input"]).stem for f in report["files"]]
    keys = [key for key, _, _ in QUALITY_COLUMNS]
    for row, record in zip(students, report["files"], strict=True):
        assert list(row["cells"]) == keys
        for key in keys:
            cell, value = row["cells"][key], record[key]
            if value is None:
                assert cell["value"] is None and cell["text"] == "no frame voiced in both"
            else:
                assert float(cell["value"]) == value
                assert float(cell["text"]) == pytest.approx(value, rel=1e-3, abs=1e-12)
    (mean,) = [r for r in rows if r["model"] == "student mean"]
    for key in keys:
        if f"mean_{key}" in report["total"]:
            assert float(mean["cells"][key]["value"]) == report["total"][f"mean_{key}"]
    (teacher,) = [r for r in rows if r["model"] == "teacher"]
    assert teacher["utterance"] == "utt03"
    cells = teacher["cells"]
    assert float(cells["mcd_db"]["value"]) == vocoded["teacher"]["mcd_db"]
    assert {c["text"] for k, c in cells.items() if k != "mcd_db"} == {"not computed"}
    header = " ".join(parse(text).text)
    assert f"step {report['step']}" in header and report["weights"] in header
    assert report["run"] in header and "Page written 20" in header


def test_a_page_without_teacher_samples_says_so_and_bad_teacher_names_are_refused(vocoded,
                                                                                 tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(vocoded["out"], out)
    words = " ".join(parse(write_listening_page(out).read_text(encoding="utf-8")).text)
    assert "No teacher samples were given for this page" in words
    assert "teacher, streamed" not in words
    with pytest.raises(ValueError, match=r"teacher samples for \['utt99'\] match no vocoded"):
        write_listening_page(out, {"utt99": {}})
    outside = {"out": str(vocoded["out"] / "teacher" / "utt03.wav"),
               "png": str(vocoded["out"] / "teacher" / "utt03.png"), "run": "t", "step": 1}
    with pytest.raises(ValueError, match="lies outside"):
        write_listening_page(out, {"utt03": outside})


CHROMIUM = shutil.which("chromium")


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get "
                                             "install chromium; .ci/run installs it as root)")
def test_chromium_renders_the_players_and_the_spectrograms(vocoded, tmp_path):
    from matplotlib.image import imread

    url = vocoded["page"].resolve().as_uri()
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = parse(dom.stdout)
    assert len(rendered.audio) == 5 and len(rendered.images) == 3
    assert len(rendered.rows) == 4  # two student rows, one teacher row, the mean
    shot = tmp_path / "page.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1000,2600", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = 255.0 * imread(shot)[..., :3]
    assert image.shape == (2600, 1000, 3)
    assert image.std() > 20  # not blank
    # the magma spectrograms are dark, saturated pixels: absent if no picture loaded
    saturation = image.max(axis=2) - image.min(axis=2)
    assert ((saturation > 60) & (image.mean(axis=2) < 140)).mean() > 0.05
