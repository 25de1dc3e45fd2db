# Two commands matter: `make demo` and `make test`. Both build .venv from pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test ui review review-holdout lint bench venv clean reset browser java imports

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# `make demo SOURCE=otel`: the same traffic written and read as OpenTelemetry GenAI spans
# (the project file evals.otel.yaml). `make demo ENGINE=spark`: ingest and sampling on Spark
# into a Parquet lake (evals.spark.yaml), in its own data directory data/spark.
demo: $(STAMP) $(if $(filter spark,$(ENGINE)),java)
	@mkdir -p $(DAGSTER_HOME)
	$(if $(filter otel,$(SOURCE)),EVALS_CONFIG=$(CURDIR)/evals.otel.yaml )$(if $(filter spark,$(ENGINE)),EVALS_CONFIG=$(CURDIR)/evals.spark.yaml EVALS_DATA_DIR=$(CURDIR)/data/spark )$(PY) -m evals_pipeline.demo

test: $(STAMP) browser java imports
	$(PY) -m pytest -q -n auto --dist loadfile --durations=40

# The architecture as contracts (pyproject [tool.importlinter]): production never imports the
# simulated world, and the stages import each other without cycles.
imports: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache

# The review app's end-to-end tests drive Debian's Chromium (no browser download). Installed
# here when missing and possible (root + apt); otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium could not be installed: the review app's browser tests will be skipped"

# engine spark needs a Java runtime (17+): Debian's default-jre-headless, installed here when
# missing and possible (root + apt), as Chromium is; otherwise the Spark tests skip and say why.
java:
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q default-jre-headless >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q default-jre-headless >/dev/null 2>&1; }; }; } || \
	  echo "java could not be installed: the engine-spark tests will be skipped"

ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml

# The review app on http://127.0.0.1:8765/ (EVALS_REVIEW_PORT to change); reads data/analytics.duckdb.
review: $(STAMP)
	$(PY) -m evals_pipeline.review

# The sealed session on http://127.0.0.1:8766/: the holdout review queue for the principal
# expert (reads and writes only data/holdout_review/; every view is logged as a holdout read).
review-holdout: $(STAMP)
	$(PY) -m evals_pipeline.review --holdout

lint: $(STAMP) imports
	$(VENV)/bin/ruff check evals_pipeline evals_pipeline_tests
	$(VENV)/bin/ruff format --check evals_pipeline evals_pipeline_tests

bench: $(STAMP)
	$(PY) -m evals_pipeline.bench sampling --rows 10000000
	$(PY) -m evals_pipeline.bench judging --concurrency 32 128
	$(PY) -m evals_pipeline.bench ingest --rows 1000000
	$(PY) -m evals_pipeline.bench daily --days 365

# Start the demo over: the generated data goes, the venv stays.
reset:
	rm -rf data/*
	@touch data/.gitkeep

clean: reset
	rm -rf $(VENV)
