# digits: `make run` serves the shipped model, `make test` runs every test.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
export HOST PORT WORKERS

.PHONY: install run test train evaluate lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $@

install: $(VENV)/.installed

run: install  ## serve the shipped model on $(HOST):$(PORT)
	$(PY) -m app

test: install  ## the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

train: install  ## retrain the shipped model (TRAIN_ARGS="--epochs 50 --data DIR")
	$(PY) -m model.train $(TRAIN_ARGS)

evaluate: install  ## recompute the model card's test numbers
	$(PY) -m model.evaluate $(EVALUATE_ARGS)

bench: install  ## load benchmark and soak, ~13 min (BENCH_ARGS="--quick" or "--parts soak")
	@command -v wrk >/dev/null || { echo "wrk not found: sudo apt-get install -y wrk"; exit 2; }
	$(PY) -m bench.components
	$(PY) -m bench.run $(BENCH_ARGS)

lint: install  ## ruff, and hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis model/artifacts/.cache
