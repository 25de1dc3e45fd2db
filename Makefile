# Two commands matter: `make demo` and `make test`. Both build .venv from pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test ui lint bench venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(PY) -m evals_pipeline.demo

test: $(STAMP)
	$(PY) -m pytest -q

ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check evals_pipeline evals_pipeline_tests
	$(VENV)/bin/ruff format --check evals_pipeline evals_pipeline_tests

bench: $(STAMP)
	$(PY) -m evals_pipeline.bench sampling --rows 10000000
	$(PY) -m evals_pipeline.bench judging

clean:
	rm -rf data/* $(VENV)
	@touch data/.gitkeep
