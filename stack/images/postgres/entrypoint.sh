#!/usr/bin/env bash
# The `postgres` service of stack/compose.yaml. On the first start (an empty volume) it makes the cluster and,
# as the native runtime does (fraudctl.clients.postgres.bootstrap), the application role that owns the Airflow,
# MLflow and rules databases: PostgreSQL 15 gives no CREATE right on schema public to anyone else.
# Passwords come from the environment (stack/.env through compose): into initdb by a private file that is
# removed at once, into psql by \getenv. Never a process argument, never an image layer.
set -euo pipefail
: "${POSTGRES_PASSWORD:?the superuser password}" "${APP_DB_USER:?}" "${APP_DB_PASSWORD:?}" \
  "${APP_AIRFLOW_DB:?}" "${APP_MLFLOW_DB:?}" "${APP_RULES_DB:?}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  umask 077
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 > /dev/null
  rm -f "$pwfile"
  # Other containers connect over the compose network, always with a password.
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # A temporary server on the socket only: the health check (over TCP) fails until the databases exist.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
  psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres --quiet <<'SQL'
\getenv app_user APP_DB_USER
\getenv app_password APP_DB_PASSWORD
\getenv airflow_db APP_AIRFLOW_DB
\getenv mlflow_db APP_MLFLOW_DB
\getenv rules_db APP_RULES_DB
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"airflow_db" OWNER :"app_user";
CREATE DATABASE :"mlflow_db" OWNER :"app_user";
CREATE DATABASE :"rules_db" OWNER :"app_user";
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
  echo "fraudctl-postgres: cluster initialised with role $APP_DB_USER, databases $APP_AIRFLOW_DB, $APP_MLFLOW_DB and $APP_RULES_DB"
fi
unset POSTGRES_PASSWORD APP_DB_PASSWORD
# The native runtime's settings (fraudctl/stack/services.py).
exec postgres -D "$PGDATA" -c listen_addresses='*' -c max_connections=200 -c shared_buffers=128MB
