"""Markdown tables from the ``metrics.json`` files that ``forecast.py`` writes.

    python recipes/timeseries/report.py runs/timeseries/*/metrics.json

Files of the same series (the CSV's name) are merged into one table: every model of every
file, one row each (a model name that appears twice is an error). Columns of a univariate
series: mean CRPS, CRPS normalized by the sum of |target|, MASE, 50 % and 90 % coverage; of a
multivariate one: the variable-averaged normalized CRPS (the headline), CRPS-sum, energy score,
MASE, coverages and the pooled normalized CRPS, labelled mixed units; then seconds (training
and sampling for the forecaster, fit and simulation for a baseline). The forecasters' rows come
first; the lowest CRPS (multivariate: the headline) of each table is in bold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cell(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def merge(paths: list[Path]) -> dict[str, dict]:
    """``{series name: {"meta": first file's settings, "models": {name: metrics}}}``."""
    out: dict[str, dict] = {}
    for path in paths:
        report = json.loads(path.read_text())
        name = Path(report["series"]).stem
        entry = out.setdefault(name, {"meta": report, "models": {}, "files": []})
        entry["files"].append(str(path))
        for model, metrics in report["models"].items():
            if model in entry["models"]:
                raise ValueError(f"{path}: model {model!r} of series {name!r} is already in "
                                 f"{entry['files'][0]}")
            entry["models"][model] = metrics
    return out


def table(entry: dict) -> str:
    meta, models = entry["meta"], entry["models"]
    multivariate = len(meta["targets"]) > 1
    if multivariate:
        columns = ["nCRPS var-avg", "CRPS-sum", "energy", "MASE", "cov 50", "cov 90",
                   "nCRPS pooled (mixed units)"]
        headline = "variable_averaged_crps"
    else:
        columns = ["CRPS", "nCRPS", "MASE", "cov 50", "cov 90"]
        headline = "crps"
    columns += ["train s", "sample s"]
    best = min(m[headline] for m in models.values())
    lines = ["| model | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]
    ours = [name for name in models if name.startswith("seqflow")]
    for name in ours + [name for name in models if name not in ours]:
        m = models[name]
        first = _cell(m[headline])
        cells = [f"**{first}**" if m[headline] == best else first]
        if multivariate:
            cells += [_cell(m.get("crps_sum")), _cell(m.get("energy_score"))]
        else:
            cells += [_cell(m["normalized_crps"])]
        cells += [_cell(m["mase"]), _cell(m["coverage_50"], 3), _cell(m["coverage_90"], 3)]
        if multivariate:
            cells += [_cell(m.get("normalized_crps_mixed_units"))]
        if "train_seconds" in m:
            cells += [f"{m['train_seconds']:.0f}", f"{m['sample_seconds']:.1f}"]
        else:
            cells += [f"{m['seconds']:.1f} (fit+sim)", "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("metrics", nargs="+", type=Path)
    args = parser.parse_args(argv)
    parts = []
    for name, entry in merge(args.metrics).items():
        meta = entry["meta"]
        # metrics.json files written before the num_samples rename hold the count as "samples"
        num_samples = meta["num_samples"] if "num_samples" in meta else meta["samples"]
        parts.append(f"### {name}\n\nC={meta['context']} H={meta['horizon']} "
                     f"K={meta['origins']} N={num_samples}, D={len(meta['targets'])}, "
                     f"season {meta['season']}\n\n{table(entry)}\n")
    text = "\n".join(parts)
    print(text)
    return text


if __name__ == "__main__":
    main()
