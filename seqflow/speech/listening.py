"""The listening page of a vocoding folder: ``index.html`` beside the wavs it plays.

:func:`write_listening_page` reads the ``metrics.json`` that :func:`~seqflow.speech.vocode_files`
wrote into a folder and writes ``index.html`` there: a header naming the run, its weights and
step and the date the page was written; one section per utterance with ``<audio controls>``
players for the original input, the teacher's streamed sample (where one is given) and the
student's vocoded waveform, and their spectrogram pictures; and a table of the speech-quality
keys (docs/glossary.md) with their units.

The page is static and self-contained: no script, no external style sheet or font, every link
relative to the folder. Input audio files are copied into ``original/`` so that the folder
plays when moved or copied; teacher samples must already lie inside the folder.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

PAGE = "index.html"
ORIGINALS = "original"
# the speech-quality keys of docs/glossary.md shown in the table: (key, column title, unit)
QUALITY_COLUMNS = (
    ("mr_stft", "MR-STFT", "-"),
    ("lsd_db", "LSD", "dB"),
    ("mcd_db", "MCD", "dB"),
    ("f0_rmse_hz", "F0 RMSE", "Hz"),
    ("vuv_error_rate", "V/UV error", "fraction"),
    ("rms_ratio", "RMS ratio", "ratio"),
)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")

STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 70em; color: #222; }
header p, .note { color: #555; }
section { border-top: 1px solid #ccc; margin-top: 1.5em; padding-top: 0.5em; }
.players { display: flex; flex-wrap: wrap; gap: 1em; }
.players figure { margin: 0; width: 17em; display: flex; flex-direction: column;
                  justify-content: space-between; }
.players audio { width: 100%; }
.pictures { display: grid; grid-template-columns: repeat(auto-fit, minmax(25em, 1fr));
            gap: 1em; }
.pictures figure { margin: 0; }
figcaption { font-size: 0.9em; margin-bottom: 0.3em; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: Path, folder: Path) -> str:
    """The escaped relative URL of ``path`` inside ``folder``."""
    relative = Path(os.path.relpath(path.resolve(), folder.resolve()))
    if relative.parts[:1] == ("..",) or relative.is_absolute():
        raise ValueError(f"{path} lies outside {folder}; the page links only files inside its "
                         "folder: write the file there")
    return _text(quote(relative.as_posix()))


def _number(value: float) -> str:
    return f"{value:.4g}"


def _quality_cells(record: Mapping, unavailable: str) -> str:
    cells = []
    for key, _, _ in QUALITY_COLUMNS:
        value = record.get(key)
        if key not in record:
            cells.append(f'<td data-key="{key}">{_text(unavailable)}</td>')
        elif value is None:
            cells.append(f'<td data-key="{key}">no frame voiced in both</td>')
        else:
            cells.append(f'<td class="number" data-key="{key}" data-value="{float(value)!r}">'
                         f"{_number(float(value))}</td>")
    return "".join(cells)


def _unavailable(record: Mapping) -> str:
    """Why a vocoded record holds no quality keys."""
    if "metrics" in record:
        return str(record["metrics"])
    return "not computed (--no-metrics)"


def _copy_original(source: Path, folder: Path) -> Path:
    target = folder / ORIGINALS / source.name
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the input file of the vocoded utterance is missing; "
                                "the page needs it to play the original")
    if target.resolve() != source.resolve():
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
    return target


def _player(label: str, path: Path, folder: Path) -> str:
    return (f"<figure><figcaption>{_text(label)}</figcaption>"
            f'<audio controls preload="metadata" src="{_link(path, folder)}"></audio></figure>')


def _picture(path: Path, folder: Path, caption: str) -> str:
    return (f'<figure><img src="{_link(path, folder)}" alt="{_text(caption)}">'
            f"<figcaption>{_text(caption)}</figcaption></figure>")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {what} is missing; run seqflow vocode into this "
                                "folder again")
    return path


def write_listening_page(folder: str | Path, teacher: Mapping[str, Mapping] | None = None,
                         teacher_note: str = "") -> Path:
    """Write ``folder/index.html`` for the vocoding outputs in ``folder``; returns its path.

    Args:
        folder: a folder written by :func:`~seqflow.speech.vocode_files` (its ``metrics.json``,
            ``NAME.wav`` and ``NAME.png``).
        teacher: the teacher's streamed samples by utterance name (the input file's stem), each
            ``{"out": wav, "png": picture, "run", "step"}`` as returned by
            :func:`~seqflow.speech.sample_from_mel_file`, optionally with the speech-quality keys
            of that sample against the same reference. The files must lie inside ``folder``.
            An utterance without one shows no teacher player, and the page says so.
        teacher_note: a sentence shown under the header about the teacher samples (e.g. how
            they were drawn).
    """
    folder = Path(folder)
    metrics_path = folder / "metrics.json"
    try:
        summary = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{metrics_path}: cannot read the vocoding metrics ({err}); run "
                         "seqflow vocode into this folder first") from None
    teacher = dict(teacher or {})
    names = [Path(record["wav"]).stem for record in summary["files"]]
    unknown = sorted(set(teacher) - set(names))
    if unknown:
        raise ValueError(f"{folder}: teacher samples for {unknown} match no vocoded utterance "
                         f"of metrics.json ({names})")
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run = str(summary["run"])
    head = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{_text(f'seqflow listening page: {run}')}</title>",
        f"<style>{STYLE}</style>", "</head>", "<body>", "<header>",
        f"<h1>Listening page: {_text(run)}</h1>",
        f"<p>Student weights "
        f"<code>{_text(summary['weights'])}</code>, step {_text(summary['step'])}; noise seed "
        f"{_text(summary['seed'])}, temperature {_text(summary['temperature'])}; "
        f"{_text(summary['sample_rate'])} Hz. Page written {_text(written)}.</p>",
    ]
    if teacher:
        head.append(f"<p>Teacher samples: streamed from each utterance's log-mel. "
                    f"{_text(teacher_note)}</p>")
    else:
        head.append("<p>No teacher samples were given for this page (seqflow vocode runs the "
                    f"student only). {_text(teacher_note)}</p>")
    head.append("</header>")

    sections, rows = [], []
    for index, (name, record) in enumerate(zip(names, summary["files"], strict=True)):
        source = Path(record["input"])
        wav = _existing(folder / f"{name}.wav", "vocoded waveform")
        png = _existing(folder / f"{name}.png", "spectrogram picture")
        players, pictures, notes = [], [], []
        if source.suffix.lower() in AUDIO_SUFFIXES:
            original = _copy_original(source, folder)
            players.append(_player(f"original: {source.name} (the input file as given)",
                                   original, folder))
        else:
            notes.append(f"The input {source.name} is a log-mel: there is no original audio.")
        sample = teacher.get(name)
        if sample is not None:
            label = f"teacher: streamed sample ({sample['run']}, step {sample['step']})"
            players.append(_player(label, _existing(Path(sample["out"]), "teacher sample"),
                                   folder))
            pictures.append(_picture(_existing(Path(sample["png"]), "teacher picture"), folder,
                                     f"{name}: ground truth and the teacher's streamed sample, "
                                     "log-mel"))
        elif teacher:
            notes.append("No teacher sample was given for this utterance.")
        players.append(_player("student: vocoded in one pass", wav, folder))
        pictures.insert(0, _picture(png, folder, f"{name}: input log-mel and the student's "
                                                 "vocoded log-mel"))
        seconds = record["seconds_of_audio"]
        sections.append("\n".join([
            f'<section id="utterance-{index}">', f"<h2>{_text(name)}</h2>",
            f"<p>{record['frames']} mel frames, {seconds:.2f} s.</p>",
            *(f'<p class="note">{_text(note)}</p>' for note in notes),
            '<div class="players">', *players, "</div>", '<div class="pictures">', *pictures,
            "</div>", "</section>"]))
        rows.append(f'<tr data-utterance="{_text(name)}" data-model="student">'
                    f"<td>{_text(name)}</td><td>student, vocoded</td>"
                    f"{_quality_cells(record, _unavailable(record))}</tr>")
        if sample is not None:
            rows.append(f'<tr data-utterance="{_text(name)}" data-model="teacher">'
                        f"<td>{_text(name)}</td><td>teacher, streamed</td>"
                        f"{_quality_cells(sample, 'not computed')}</tr>")
    total = summary["total"]
    mean = {key: total[f"mean_{key}"] for key, _, _ in QUALITY_COLUMNS if f"mean_{key}" in total}
    rows.append('<tr data-utterance="" data-model="student mean">'
                f"<td>mean over {total['files']} file(s)</td><td>student, vocoded</td>"
                f"{_quality_cells(mean, 'no file with metrics')}</tr>")
    columns = "".join(f"<th>{_text(title)} ({_text(unit)})</th>"
                      for _, title, unit in QUALITY_COLUMNS)
    table = [
        "<section>", "<h2>Metrics against the input audio</h2>",
        '<p class="note">Computed by seqflow.metrics.audio.speech_quality against the input '
        "resampled to the run's rate and trimmed to frames &times; hop samples; keys and units "
        "as in docs/glossary.md (F0 over frames voiced in both).</p>",
        '<table id="metrics">', f"<thead><tr><th>utterance</th><th>model</th>{columns}</tr>"
        "</thead>", "<tbody>", *rows, "</tbody>", "</table>", "</section>"]
    path = folder / PAGE
    path.write_text("\n".join([*head, *table, *sections, "</body>", "</html>", ""]),
                    encoding="utf-8")
    return path
