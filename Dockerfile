# Flywheel image: the project installed with its pinned dependencies.
FROM python:3.11.7-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flywheel
COPY pyproject.toml constraints.txt README.md ./
COPY pipelines ./pipelines
RUN pip install --no-cache-dir -c constraints.txt --extra-index-url https://download.pytorch.org/whl/cpu -e . psycopg2-binary
COPY dags ./dags
COPY plugins ./plugins
COPY params.yaml dvc.yaml ./
ENV FLYWHEEL_PROJECT=/opt/flywheel \
    FLYWHEEL_PARAMS=/opt/flywheel/params.yaml \
    FLYWHEEL_HOME=/var/lib/flywheel \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/flywheel/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/flywheel/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONPATH=/opt/flywheel/plugins
