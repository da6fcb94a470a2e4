# Two commands for a newcomer: `make demo` and `make test`. Every target builds .venv on first use,
# installing the tested versions of constraints.txt (`make lock` refreshes them).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-density test lint bench lock results results-check clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,speech]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) recipes/speech/demo.py --out runs/demo

demo-density: $(STAMP)
	$(PY) recipes/density/toy_demo.py --out runs/demo-density

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) tools/bench.py

# Reinstall from pyproject.toml's ranges in a temporary venv, run pip check and the suite there,
# then rewrite constraints.txt (tools/lock.sh).
lock:
	tools/lock.sh $(PYTHON)

# The tables of README.md, docs/benchmarks.md and docs/results/*.md from the raw results
# committed beside them (no training, no timing; the standard library only).
results:
	$(PYTHON) tools/results.py

results-check:
	$(PYTHON) tools/results.py --check

clean-venv:
	rm -rf $(VENV)
