# Flywheel image: the project installed with its pinned dependencies (constraints.txt), for every
# service of docker-compose.yml that runs Flywheel or Airflow code (and the MLflow server, which needs
# the same psycopg2 and boto3). TORCH_EXTRA_INDEX picks the PyTorch build: the CPU wheels by default;
# empty for PyPI's CUDA build (the `gpu` worker's image).
FROM python:3.11.7-slim-bookworm

ARG TORCH_EXTRA_INDEX=https://download.pytorch.org/whl/cpu

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flywheel
COPY pyproject.toml constraints.txt README.md ./
COPY pipelines ./pipelines
RUN pip install --no-cache-dir -c constraints.txt ${TORCH_EXTRA_INDEX:+--extra-index-url ${TORCH_EXTRA_INDEX}} \
        -e '.[stack]' \
    && pip check
COPY dags ./dags
COPY plugins ./plugins
COPY params.yaml dvc.yaml ./
COPY docker ./docker

# A non-root user owns the state: the DVC workspace and lake (FLYWHEEL_HOME) and Airflow's logs.
RUN useradd --uid 50000 --create-home flywheel \
    && mkdir -p /var/lib/flywheel /opt/airflow/logs \
    && chown -R flywheel /var/lib/flywheel /opt/airflow
USER flywheel

ENV FLYWHEEL_PROJECT=/opt/flywheel \
    FLYWHEEL_PARAMS=/opt/flywheel/params.yaml \
    FLYWHEEL_HOME=/var/lib/flywheel \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/flywheel/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/flywheel/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false \
    PYTHONPATH=/opt/flywheel/plugins:/opt/flywheel/dags \
    GIT_AUTHOR_NAME=flywheel GIT_AUTHOR_EMAIL=flywheel@localhost \
    GIT_COMMITTER_NAME=flywheel GIT_COMMITTER_EMAIL=flywheel@localhost

CMD ["airflow", "version"]
