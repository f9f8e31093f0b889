# Two commands on a fresh machine with Python 3.11:  make run  |  make test
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean-venv use-paper use-default results

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,foundation]'
	touch $(STAMP)

# Set up (if needed) and reproduce the pipeline on the embedded default (params.yaml).
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Set up (if needed) and run the test suite.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check csad stages tests benchmarks
	$(BIN)/ruff format --check csad stages tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format csad stages tests benchmarks
	$(BIN)/ruff check --fix csad stages tests benchmarks

clean-venv:
	rm -rf $(VENV)

# Switch params.yaml to the paper's configuration (MVTec LOCO AD, foundation models, full schedules) and back.
use-paper:
	cp params/paper.yaml params.yaml
	@echo "params.yaml is now params/paper.yaml; run: dvc repro evaluate   (back: make use-default)"

use-default:
	git checkout -- params.yaml
	@echo "params.yaml is the embedded default again"

# Regenerate the README results table from metrics/summary.json.
results: $(STAMP)
	$(BIN)/python -m csad.report --summary metrics/summary.json --readme README.md
