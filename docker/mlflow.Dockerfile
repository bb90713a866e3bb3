# syntax=docker/dockerfile:1.7
# The MLflow tracking server alone (not the Flywheel image): MLflow with PostgreSQL (psycopg2) and S3
# (boto3) at the project's pins, behind MLflow's basic-auth app (docker/mlflow-server.sh).
FROM python:3.11.7-slim-bookworm
WORKDIR /opt/mlflow
COPY constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -c constraints.txt mlflow psycopg2-binary boto3 && pip check
COPY docker/mlflow-server.sh /usr/local/bin/mlflow-server
RUN useradd --uid 50001 --create-home mlflow
USER mlflow
EXPOSE 5000
CMD ["mlflow-server"]
