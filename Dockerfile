# syntax=docker/dockerfile:1.7
# Flywheel image: the project installed with its pinned dependencies (constraints.txt), for every
# Airflow service of docker-compose.yml (MLflow has its own slim image: docker/mlflow.Dockerfile).
# TORCH_EXTRA_INDEX picks the PyTorch build: the CPU wheels by default; empty for PyPI's CUDA build (the
# `gpu` worker's image). FLYWHEEL_GIT_COMMIT is the commit built from; lineage records it on every run:
#   FLYWHEEL_GIT_COMMIT=$(git rev-parse HEAD) docker compose build
FROM python:3.11.7-slim-bookworm

ARG TORCH_EXTRA_INDEX=https://download.pytorch.org/whl/cpu

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flywheel

# Layer caching: the dependencies (torch, Airflow, ...) are installed from the pins alone, against a stub
# package, so editing Flywheel's code rebuilds only the layers below; pip's cache survives rebuilds.
COPY pyproject.toml constraints.txt README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir pipelines && touch pipelines/__init__.py \
    && pip install -c constraints.txt ${TORCH_EXTRA_INDEX:+--extra-index-url ${TORCH_EXTRA_INDEX}} -e '.[stack]' \
    && pip check
COPY pipelines ./pipelines
COPY dags ./dags
COPY plugins ./plugins
COPY params.yaml dvc.yaml ./
COPY docker ./docker

# A non-root user owns the scratch state (a task's clone of the DVC workspace) and Airflow's logs.
RUN useradd --uid 50000 --create-home flywheel \
    && mkdir -p /var/lib/flywheel /var/lib/flywheel-git /opt/airflow/logs \
    && chown -R flywheel /var/lib/flywheel /var/lib/flywheel-git /opt/airflow
USER flywheel

ARG FLYWHEEL_GIT_COMMIT=unknown
ENV FLYWHEEL_PROJECT=/opt/flywheel \
    FLYWHEEL_PARAMS=/opt/flywheel/params.yaml \
    FLYWHEEL_HOME=/var/lib/flywheel \
    FLYWHEEL_GIT_COMMIT=${FLYWHEEL_GIT_COMMIT} \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/flywheel/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/flywheel/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false \
    PYTHONPATH=/opt/flywheel/plugins:/opt/flywheel/dags \
    GIT_AUTHOR_NAME=flywheel GIT_AUTHOR_EMAIL=flywheel@localhost \
    GIT_COMMITTER_NAME=flywheel GIT_COMMITTER_EMAIL=flywheel@localhost

CMD ["airflow", "version"]
