# Flywheel: the commands a person types. `make run` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin

export FLYWHEEL_HOME ?= $(CURDIR)/.flywheel
export FLYWHEEL_PARAMS ?= $(CURDIR)/params.yaml
export FLYWHEEL_PROJECT ?= $(CURDIR)
export AIRFLOW_HOME ?= $(FLYWHEEL_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__LOGGING__LOGGING_LEVEL ?= WARNING
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING ?= false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR ?= false
export DVC_NO_ANALYTICS := 1
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)/dags
export PATH := $(BIN):$(PATH)

DEMO_EVENTS := $(CURDIR)/demo/events
DEMO_ROWS ?= 20000

.PHONY: help install run test test-fast lint bench up constraints clean

help:
	@echo "make run    set up and run the whole loop on the embedded default, then print a summary"
	@echo "make test   set up and run the whole test suite"
	@echo "make bench  run the benchmarks; results in benchmarks/results.json and benchmarks/RESULTS.md"
	@echo "make lint   ruff"
	@echo "make clean  remove the embedded state (.flywheel) and the demo events"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Flywheel needs Python 3.11; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip check
	touch $@

$(AIRFLOW_HOME)/airflow.db: | $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/migrate.log; exit 1)
	$(BIN)/airflow pools set gpu 1 "Training tasks; raise to the number of GPUs" > /dev/null
	$(BIN)/airflow pools set dvc 1 "One writer per DVC workspace" > /dev/null

run: $(VENV)/.installed $(AIRFLOW_HOME)/airflow.db
	$(BIN)/flywheel init
	$(BIN)/flywheel produce --out $(DEMO_EVENTS) --rows $(DEMO_ROWS) --batch demo --malformed-fraction 0.01 --seed 7 > /dev/null
	$(BIN)/airflow dags test flywheel_ingest > $(FLYWHEEL_HOME)/ingest.log 2>&1 || (tail -60 $(FLYWHEEL_HOME)/ingest.log; exit 1)
	$(BIN)/airflow dags test flywheel_training > $(FLYWHEEL_HOME)/training.log 2>&1 || (tail -80 $(FLYWHEEL_HOME)/training.log; exit 1)
	$(BIN)/flywheel summary

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout 1200

lint: $(VENV)/.installed
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.run

up: $(VENV)/.installed $(AIRFLOW_HOME)/airflow.db
	$(BIN)/flywheel init
	@echo "Airflow UI: http://localhost:8080 (login printed by airflow standalone); MLflow UI: http://localhost:5000"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(FLYWHEEL_HOME)/mlflow.db --port 5000 & $(BIN)/airflow standalone

constraints: $(VENV)/.installed
	( head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//' ) > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf $(FLYWHEEL_HOME) $(CURDIR)/demo
