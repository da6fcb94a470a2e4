"""The results pages show what their committed raw results generate (tools/results.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "results.py"


def load():
    spec = importlib.util.spec_from_file_location("results_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_matches_its_raw_results():
    done = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, (
        "a results page differs from what its raw results generate; run `make results` "
        f"(or fix the raw results):\n{done.stdout[-6000:]}{done.stderr[-2000:]}")


def test_a_number_edited_by_hand_is_caught_and_put_back():
    results = load()
    for page in results.PAGES:
        text = (ROOT / page).read_text()
        table = next((m for m in results.BLOCK.finditer(text) if m.group("kind") == "table"),
                     None)
        if table is not None:
            break
    row = table.group("body").split("\n")[2]  # the first row under the header
    digit = next(i for i, c in enumerate(row) if c.isdigit())
    edited_row = row[:digit] + str((int(row[digit]) + 1) % 10) + row[digit + 1:]
    edited = text.replace(row, edited_row, 1)
    assert results.render(edited, page) == text != edited


def test_rows_without_raw_results_say_so_in_their_table():
    results = load()
    for quoted in sorted((ROOT / "docs" / "results").rglob("*.json")):
        tables = json.loads(quoted.read_text()).get("tables", {})
        for name, table in tables.items():
            generated = results.BLOCKS[name]().split("\n")
            for row in table["rows"]:
                if row["reproducible"] or row.get("superseded_by_rerun"):
                    continue  # shown from the raw results of a rerun
                assert row["note"].startswith(results.UNREPRODUCIBLE)
                line = "| " + " | ".join([*row["cells"], row["note"]]) + " |"
                assert line in generated, f"{quoted.name}: {name}: {line}"


def test_malformed_markers_are_errors():
    results = load()
    with pytest.raises(ValueError, match="no generator"):
        results.render("<!-- table:no_such_table -->\n<!-- /table:no_such_table -->\n")
    name = next(iter(results.BLOCKS))
    with pytest.raises(ValueError, match="no closing marker"):
        results.render(f"<!-- table:{name} -->\n| a |\n")
