#!/usr/bin/env bash
# Runs once, when the postgres-data volume is empty (the image's docker-entrypoint-initdb.d hook).
# Creates the application role and makes it the owner of the Airflow and MLflow databases:
# PostgreSQL 15 gives no CREATE right on schema public to anyone else, so ownership is what
# lets the role run its migrations.
set -euo pipefail

# psql's :"name" and :'value' quote identifiers and literals, so no value is spliced into SQL text.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" \
  -v airflow_db="$APP_AIRFLOW_DB" -v mlflow_db="$APP_MLFLOW_DB" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"airflow_db" OWNER :"app_user";
CREATE DATABASE :"mlflow_db" OWNER :"app_user";
SQL
