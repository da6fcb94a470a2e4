#!/usr/bin/env bash
# make lock: refresh constraints.txt, the tested dependency set.
#
# Installs seqflow[dev,speech] from the ranges in pyproject.toml (not from the old lock) into a
# fresh temporary venv, runs `pip check` and the whole test suite there against the candidate
# lock, and only if both pass replaces constraints.txt by that venv's `pip freeze`.
# Usage: tools/lock.sh [PYTHON]   (default python3; the lock records its version and platform)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$python" -m venv "$tmp/venv"
py="$tmp/venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q -e ".[dev,speech]"
"$py" -m pip check
where=$("$py" -c 'import platform, sys; print(f"Python {platform.python_version()}, {sys.platform} {platform.machine()}")')
{
    echo "# The tested dependency set: every distribution that 'pip install -e \".[dev,speech]\"' installs,"
    echo "# at the exact version with which 'pip check' and the whole test suite passed"
    echo "# ($where)."
    echo "# Install with:  pip install -c constraints.txt -e \".[dev,speech]\"   (what make does)"
    echo "# Refresh with:  make lock   (tools/lock.sh: a fresh venv from pyproject.toml's ranges, then"
    echo "# pip check and the suite; this file is replaced only if both pass)"
    # --all keeps setuptools (torch and tensorboard require it); pip itself is not pinned.
    "$py" -m pip freeze --all --exclude-editable | grep -v -i '^pip=='
} > "$tmp/constraints.txt"
SEQFLOW_CONSTRAINTS="$tmp/constraints.txt" "$py" -m pytest
cp "$tmp/constraints.txt" constraints.txt
echo "constraints.txt rewritten; review it with: git diff constraints.txt"
