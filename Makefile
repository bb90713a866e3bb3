# Flywheel: the commands a person types. `make run` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin

# make run TASK=regression|multiclass: the same loop on the demo's delivery times or support tickets
# (examples/delivery-times, examples/support-tickets), each in its own home beside the binary default's.
TASK ?= binary
ifeq ($(TASK),binary)
export FLYWHEEL_HOME ?= $(CURDIR)/.flywheel
export FLYWHEEL_PARAMS ?= $(CURDIR)/params.yaml
else
TASK_EXAMPLE := $(if $(filter regression,$(TASK)),delivery-times,$(if $(filter multiclass,$(TASK)),support-tickets,$(error TASK=$(TASK): expected binary, regression or multiclass)))
export FLYWHEEL_HOME ?= $(CURDIR)/.flywheel-$(TASK)
export FLYWHEEL_PARAMS ?= $(CURDIR)/examples/$(TASK_EXAMPLE)/params.yaml
endif
# One local Kafka for every task's run (the tests start their own services).
run stop up clean: export FLYWHEEL_SERVICES_DIR ?= $(CURDIR)/.flywheel/services
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
# The broker of `flywheel services up` (Apache Kafka 2.3 on ZooKeeper; PIDs in $(FLYWHEEL_HOME)/services).
export FLYWHEEL_KAFKA_BOOTSTRAP ?= 127.0.0.1:9092
export PATH := $(BIN):$(PATH)

DEMO_EVENTS := $(CURDIR)/demo/events
DEMO_ROWS ?= 20000
# The drifted batch of `make run`, timed after the first one: every covariate moved, 30% of the fraud rule changed.
DRIFT_ROWS ?= 30000
# The embedded Airflow of `make run` (pipelines/demo/airflow_runner/) and the conf of its ingest runs.
RUNNER := $(BIN)/python -m pipelines.demo.airflow_runner
KAFKA_CONF := '{"sources": ["kafka"]}'
# Slots of the Airflow pool `gpu` (training tasks that may run at once), set when the Airflow DB is created.
FLYWHEEL_GPU_SLOTS ?= 1

.PHONY: help install run stop test test-fast lint bench backtest up backfill browser constraints clean

# make up: the embedded UIs, on this machine only (127.0.0.1). The login is deterministic: user
# FLYWHEEL_UI_USER, password FLYWHEEL_UI_PASSWORD, written to the simple auth manager's password file.
AIRFLOW_PORT ?= 8080
MLFLOW_PORT ?= 5000
FLYWHEEL_UI_USER ?= admin
FLYWHEEL_UI_PASSWORD ?= flywheel
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

help:
	@echo "make run    set up and run the whole loop on the embedded default, then print a summary"
	@echo "make stop   stop the Airflow processes of an interrupted make run"
	@echo "make test   set up and run the whole test suite"
	@echo "make bench  run the benchmarks; results in benchmarks/results.json and benchmarks/RESULTS.md"
	@echo "make gpu-check  on a CUDA machine: the CUDA tests and GPU benchmarks in under 8 minutes (results.json: gpu_check)"
	@echo "make backtest   replay the NOAA weather example, retraining policies side by side (report: benchmarks/.work/backtest/)"
	@echo "make up     the Airflow UI (http://localhost:$(AIRFLOW_PORT), $(FLYWHEEL_UI_USER) / $(FLYWHEEL_UI_PASSWORD)) and the MLflow UI"
	@echo "make backfill DAG=flywheel_training FROM=2026-11-01 TO=2026-11-07T03:00   one run per schedule time (needs make up)"
	@echo "make lint   ruff check, ruff format --check, mypy on pipelines/"
	@echo "make test-fast   the unit and DAG tests (a few minutes)"
	@echo "make serve  serve the champion over HTTP on 127.0.0.1:$(SERVE_PORT) (/predict, /version, /health, /metrics)"
	@echo "make clean  remove the embedded state (.flywheel) and the demo events"
	@echo "make stack  the production topology here: PostgreSQL, Redis, MLflow with auth, Celery workers, Prometheus (make stack-down)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Flywheel needs Python 3.11; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,stack]'
	$(BIN)/pip check
	touch $@

$(AIRFLOW_HOME)/airflow.db: | $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/migrate.log; exit 1)
	$(BIN)/airflow pools set gpu $(FLYWHEEL_GPU_SLOTS) "Training tasks; FLYWHEEL_GPU_SLOTS, e.g. GPUs / train.devices" > /dev/null
	$(BIN)/airflow pools set dvc 1 "One writer per DVC workspace" > /dev/null

# The loop on the real scheduler: the runner starts Airflow's scheduler, DAG processor and API server in the
# background (PIDs and logs in $(AIRFLOW_HOME)/processes), triggers runs through the REST API and follows
# them; flywheel_drift and the drift-triggered flywheel_training are started by the scheduler itself, on the
# validated_events and drift_detected assets. Airflow is stopped at the end, on error or Ctrl-C too.
# DAGs are created paused, and unpausing one starts its latest missed cron slot at once (catchup=False):
# flywheel_ingest and flywheel_training stay paused until their first trigger, which takes that slot.
# Later scheduled flywheel_ingest runs read ingest.files.path (demo/events), which is empty here.
run: $(VENV)/.installed $(AIRFLOW_HOME)/airflow.db
	$(BIN)/flywheel init
	$(BIN)/flywheel services up kafka > $(FLYWHEEL_HOME)/services.log 2>&1 || (tail -40 $(FLYWHEEL_HOME)/services.log; exit 1)
	mkdir -p $(DEMO_EVENTS)
	$(BIN)/flywheel produce --to kafka --task $(TASK) --rows $(DEMO_ROWS) --batch demo $(if $(filter binary,$(TASK)),--malformed-fraction 0.01) --seed 7 > /dev/null
	@set -e; trap '$(RUNNER) stop' EXIT; \
	$(RUNNER) start --dag flywheel_drift --dag flywheel_registry --dag flywheel_scoring; \
	$(RUNNER) trigger flywheel_ingest --conf $(KAFKA_CONF) --then flywheel_drift; \
	$(RUNNER) trigger flywheel_training; \
	echo "producing the drifted batch: $(DRIFT_ROWS) events to Kafka"; \
	$(BIN)/flywheel produce --to kafka --task $(TASK) --rows $(DRIFT_ROWS) --batch drifted --seed 8 --covariate-drift 1.0 --concept-drift 0.3 --start $$(date -u +%Y-%m-%dT00:00:00Z) --end $$(date -u +%Y-%m-%dT%H:%M:%SZ) > /dev/null; \
	drifted_at=$$(date -u +%Y-%m-%dT%H:%M:%SZ); \
	$(RUNNER) trigger flywheel_ingest --conf $(KAFKA_CONF) --then flywheel_drift flywheel_training; \
	$(RUNNER) wait flywheel_scoring --after $$drifted_at
	$(BIN)/flywheel summary

# Stops, by PID, the Airflow processes `make run` started (after a `make run` that was killed).
stop:
	$(RUNNER) stop

# Tests run in random order (pytest-randomly; the seed is printed: -p randomly -p "randomly_seed=N" repeats
# one). The scenario tiers (e2e, ui, docs) follow their files' order: each test is one long story.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider
test: $(VENV)/.installed browser
	$(PYTEST) --timeout 1200 tests/unit tests/dags tests/integration
	$(PYTEST) --timeout 1200 -p no:randomly tests/e2e tests/ui tests/docs

# unit + dags: a few minutes, no service started
test-fast: $(VENV)/.installed
	$(PYTEST) --timeout 600 tests/unit tests/dags

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.run

# make gpu-check: every GPU check in one run of at most 8 minutes (benchmarks/gpu_check.py: the CUDA tests,
# train_gpu_1m/10m, bf16 and torch.compile on/off, DDP over all visible GPUs); figures in
# benchmarks/results.json under "gpu_check". Without CUDA it says so and exits 0. It uses the .venv as it is
# (no install step: the GPU machine has no network), so a carried .venv works on a fresh copy.
.PHONY: gpu-check
gpu-check:
	@test -x $(BIN)/python || { echo "gpu-check needs the project's .venv (make install, or carry it)"; exit 2; }
	$(BIN)/python -m benchmarks.gpu_check
# make serve: `flywheel serve` on the embedded installation's champion (after make run); set
# FLYWHEEL_SERVE_TOKEN to require a bearer token. docs/serving.md.
SERVE_PORT ?= 8000
.PHONY: serve
serve: $(VENV)/.installed
	$(BIN)/flywheel serve --port $(SERVE_PORT)

# make backtest: `flywheel backtest` on the NOAA weather example (examples/noaa-weather, 30-day steps over
# 50 years, policies never, every:1/3/6, drift, always); the report (HTML, PNG, JSON) in
# benchmarks/.work/backtest/noaa-<window>/ and the table in benchmarks/results.json under "backtest".
# BACKTEST="noaa-sliding noaa-expanding noaa-windows stationary abrupt abrupt-expanding noaa-year" runs them all.
BACKTEST ?= noaa
backtest: $(VENV)/.installed
	$(BIN)/python -m benchmarks.bench_backtest $(BACKTEST)

# make up also starts the local services: Kafka on 127.0.0.1:9092 and moto's S3 API on 127.0.0.1:9000 (any keys).
up: export AWS_ENDPOINT_URL ?= http://127.0.0.1:9000
up: export AWS_ACCESS_KEY_ID ?= flywheel
up: export AWS_SECRET_ACCESS_KEY ?= flywheel
up: export AWS_DEFAULT_REGION ?= us-east-1
up: $(VENV)/.installed $(AIRFLOW_HOME)/airflow.db
	$(BIN)/flywheel init > /dev/null
	$(BIN)/flywheel services up kafka s3 > $(FLYWHEEL_HOME)/services.log 2>&1 || (tail -40 $(FLYWHEEL_HOME)/services.log; exit 1)
	@echo "Kafka: $(FLYWHEEL_KAFKA_BOOTSTRAP)  S3 API: $$AWS_ENDPOINT_URL  (flywheel services status; flywheel services down)"
	@printf '{"%s": "%s"}\n' "$(FLYWHEEL_UI_USER)" "$(FLYWHEEL_UI_PASSWORD)" > $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated
	@echo "Airflow UI: http://localhost:$(AIRFLOW_PORT)  login: $(FLYWHEEL_UI_USER) / $(FLYWHEEL_UI_PASSWORD)  (FLYWHEEL_UI_USER, FLYWHEEL_UI_PASSWORD)"
	@echo "MLflow UI:  http://localhost:$(MLFLOW_PORT)   logs: $(FLYWHEEL_HOME)/mlflow-ui.log; Ctrl-C stops both"
	@trap 'kill $$mlflow_pid 2>/dev/null' EXIT; \
	$(BIN)/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) --backend-store-uri sqlite:///$(FLYWHEEL_HOME)/mlflow.db \
		> $(FLYWHEEL_HOME)/mlflow-ui.log 2>&1 & mlflow_pid=$$!; \
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT) AIRFLOW__API__BASE_URL=http://localhost:$(AIRFLOW_PORT) \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$(FLYWHEEL_UI_USER):admin $(BIN)/airflow standalone

# One run per schedule time in [FROM, TO], one at a time (the runs share one DVC workspace). FROM and TO are
# times: the nightly 02:00 run of the 7th needs TO=2026-11-07T03:00 (TO=2026-11-07 means its midnight).
# The runs are executed by the scheduler of `make up`. REPROCESS=completed re-runs dates that already ran.
backfill: $(VENV)/.installed $(AIRFLOW_HOME)/airflow.db
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill DAG=flywheel_training FROM=2026-11-01 TO=2026-11-07T03:00 [REPROCESS=none|failed|completed]"; exit 2; }
	$(BIN)/airflow backfill create --dag-id $(or $(DAG),flywheel_training) --from-date $(FROM) --to-date $(TO) \
		--max-active-runs 1 --reprocess-behavior $(or $(REPROCESS),none)

# Debian's Chromium and ChromeDriver drive the browser test (tests/ui); installed once, from apt.
browser:
	@command -v chromium > /dev/null && command -v chromedriver > /dev/null || { \
		echo "installing Debian's chromium and chromium-driver (browser test)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver > /dev/null; }

constraints: $(VENV)/.installed
	( head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//' ) > constraints.new && mv constraints.new constraints.txt

clean:
	-test -x $(BIN)/python && $(RUNNER) stop > /dev/null
	-test -x $(BIN)/flywheel && $(BIN)/flywheel services down > /dev/null
	rm -rf $(FLYWHEEL_HOME) $(CURDIR)/.flywheel-regression $(CURDIR)/.flywheel-multiclass $(CURDIR)/demo

# make stack: the production topology on this machine, from Debian and PyPI packages (docs/operations.md,
# "The stack"): PostgreSQL, Redis, Kafka, the S3 API, MLflow behind basic auth, Airflow on Celery workers,
# Flywheel's metrics exporter and Prometheus scraping it.
# State, ports, secrets and the client environment (stack.env) in $(FLYWHEEL_HOME)/stack.
.PHONY: stack stack-down test-stack stack-packages
stack: $(VENV)/.installed stack-packages
	$(BIN)/flywheel stack up
	@echo "client environment: set -a; . $(FLYWHEEL_HOME)/stack/stack.env; set +a   (flywheel stack status; make stack-down)"

stack-down: $(VENV)/.installed
	$(BIN)/flywheel stack down

# the stack tier: its own stack on a private state folder, the loop and the faults (about 20 minutes on 2 cores)
test-stack: $(VENV)/.installed stack-packages
	$(PYTEST) --timeout 2700 -p no:randomly tests/stack

# Debian's PostgreSQL, Redis and Prometheus, installed once with apt-get (as for the browser test's chromium).
# bookworm has no prometheus-statsd-exporter and no Grafana: those are in the compose topology only.
stack-packages:
	@ls /usr/lib/postgresql/*/bin/postgres > /dev/null 2>&1 && command -v redis-server > /dev/null && command -v prometheus > /dev/null || { \
		echo "installing Debian's postgresql, redis-server and prometheus (the stack's database, Celery broker and metrics)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends postgresql redis-server prometheus > /dev/null \
		|| { echo "could not install them: run 'apt-get install -y postgresql redis-server prometheus' as root, then make stack"; exit 1; }; }
