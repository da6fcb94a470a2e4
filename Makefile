# Two commands for a newcomer: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-density test lint bench results results-check clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,speech]"
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

# The tables of README.md, docs/benchmarks.md and docs/results/*.md from the raw results
# committed beside them (no training, no timing; the standard library only).
results:
	$(PYTHON) tools/results.py

results-check:
	$(PYTHON) tools/results.py --check

clean-venv:
	rm -rf $(VENV)
