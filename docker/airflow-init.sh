#!/usr/bin/env bash
# One-shot set-up of the full stack (the `airflow-init` service): Airflow's metadata DB (with the FAB
# auth manager's tables), the admin user, Flywheel's pools, and the DVC workspace's shared git remote.
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

# Training goes to FLYWHEEL_TRAIN_QUEUE: a queue no worker serves would leave every train task waiting.
case "${FLYWHEEL_TRAIN_QUEUE:-default},${COMPOSE_PROFILES:-}" in
  default,*) ;;
  gpu,*gpu*) ;;
  *) echo "FLYWHEEL_TRAIN_QUEUE=${FLYWHEEL_TRAIN_QUEUE} but COMPOSE_PROFILES='${COMPOSE_PROFILES:-}' starts no" \
          "worker on it: set COMPOSE_PROFILES=gpu (an NVIDIA GPU) or leave FLYWHEEL_TRAIN_QUEUE empty" >&2
     exit 1 ;;
esac

# The DVC workspace's git remote: every task clones it and pushes its commit (docs/operations.md)
if [ ! -f "${FLYWHEEL_WORKSPACE_REMOTE}/HEAD" ]; then
  git init -q --bare -b main "${FLYWHEEL_WORKSPACE_REMOTE}"
fi
