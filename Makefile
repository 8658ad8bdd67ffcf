# digits: `make run` serves the shipped model, `make test` runs every test.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
export HOST PORT WORKERS

.PHONY: install run test train evaluate convert lint format bench clean

# One venv; each target installs what it needs on first use, a stamp per set:
# serving needs no TensorFlow (make run), training and conversion do (make train,
# make convert), the tests need both extras (make test).
EXTRAS_serve :=
EXTRAS_train := [train]
EXTRAS_dev := [train,dev]

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.$(EXTRAS_$*)'
	touch $@

install: $(VENV)/.installed-dev  ## everything: the service, training, the tests

run: $(VENV)/.installed-serve  ## serve the shipped model on $(HOST):$(PORT)
	$(PY) -m app

test: $(VENV)/.installed-dev  ## the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

train: $(VENV)/.installed-train  ## retrain the shipped model, then convert it (TRAIN_ARGS="--epochs 50 --data DIR")
	$(PY) -m model.train $(TRAIN_ARGS)

convert: $(VENV)/.installed-train  ## write the shipped model's LiteRT form and record it in the model card
	$(PY) -m app.inference convert model/artifacts/digitnet.keras

evaluate: $(VENV)/.installed-train  ## recompute the model card's test numbers
	$(PY) -m model.evaluate $(EVALUATE_ARGS)

bench: $(VENV)/.installed-dev  ## load benchmark and soak, ~13 min (BENCH_ARGS="--quick" or "--parts soak")
	@command -v wrk >/dev/null || { echo "wrk not found: sudo apt-get install -y wrk"; exit 2; }
	$(PY) -m bench.components
	$(PY) -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.installed-dev  ## ruff, and hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis model/artifacts/.cache
