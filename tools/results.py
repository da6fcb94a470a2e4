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
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["docs/benchmarks.md", "docs/results/speech.md", "docs/results/timeseries.md"]
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

    def realtime(tree: str) -> str:
        us = step(tree)["us_per_step"]
        return f"{1e6 / us / 16000:.2f}x real time (1 / {us:.3g} us)"

    rows = [
        ["streaming WaveNet step, batch 1: ≤ 10x the one-pass cost per sample at T = 4096",
         *(f"{step(t)['over_one_pass']:.1f}x ({step(t)['us_per_step']:.3g} us / step)"
           for t in ("before", "after")), "yes"],
        ["faster than real time at 16 kHz on one core (batch 1)", realtime("before"),
         realtime("after"), "yes"],
        ["5-layer MAF, D = 64, batch 256, 1 thread: sample / log_prob ≤ 6x",
         stack_ratio("before", 64), stack_ratio("after", 64), "yes"],
        ["5-layer MAF, D = 256, batch 256, 1 thread: sample / log_prob ≤ 10x",
         stack_ratio("before", 256), stack_ratio("after", 256), "yes"],
        ["one-pass IAF sample, batch 16 x T = 16384: samples/s ≥ batch 1's, default allocator",
         batch16("before", "whole"), batch16("after", "chunked"), "yes"],
        ["one-pass IAF sample, T = 10^6, batch 1: peak memory bounded by the chunk",
         million("before", "whole"), million("after", "chunked"),
         "yes (chunk: 16,384 values)"],
        ["streaming with 2 process threads no slower than with 1 (WaveNet step)",
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
