#!/usr/bin/env bash
# One-shot set-up of the full stack (the `airflow-init` service): Airflow's metadata DB (with the FAB
# auth manager's tables), the admin user, Flywheel's pools, and the DVC workspace with its remote on MinIO.
# Idempotent: `docker compose up` runs it every time before the Airflow services start.
set -euo pipefail
: "${AIRFLOW_ADMIN_USER:?set AIRFLOW_ADMIN_USER in .env}" "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"

airflow db migrate

if airflow users list --output json | python -c 'import json, os, sys
sys.exit(0 if any(u["username"] == os.environ["AIRFLOW_ADMIN_USER"] for u in json.load(sys.stdin)) else 1)'; then
  echo "Airflow user ${AIRFLOW_ADMIN_USER} exists"
else
  airflow users create --role Admin --username "${AIRFLOW_ADMIN_USER}" --password "${AIRFLOW_ADMIN_PASSWORD}" \
    --firstname Flywheel --lastname Admin --email "${AIRFLOW_ADMIN_EMAIL:-${AIRFLOW_ADMIN_USER}@localhost}"
fi

airflow pools set gpu "${FLYWHEEL_GPU_SLOTS:-1}" "Training tasks; one per GPU of the gpu workers"
airflow pools set dvc 1 "One writer per DVC workspace"

flywheel init --json
dvc --cd "${FLYWHEEL_HOME}/workspace" remote modify store endpointurl "${AWS_ENDPOINT_URL_S3}"
