#!/bin/sh
# MLflow's tracking server with basic auth: its users in PostgreSQL (database mlflow_auth), the admin's
# password and the CSRF key from the environment (.env), artifacts proxied to S3. Nothing secret is in a file
# of the image: the auth config is written at start into a private temporary file.
set -eu
: "${MLFLOW_DB_URI:?}" "${MLFLOW_AUTH_DB_URI:?}" "${MLFLOW_AUTH_ADMIN_PASSWORD:?}" "${MLFLOW_FLASK_SERVER_SECRET_KEY:?}"
umask 077
MLFLOW_AUTH_CONFIG_PATH=$(mktemp)
export MLFLOW_AUTH_CONFIG_PATH
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DB_URI}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
exec mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 \
    --backend-store-uri "$MLFLOW_DB_URI" --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-s3://mlflow}"
