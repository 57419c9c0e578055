#!/usr/bin/env bash
# airflow-init (compose): one-shot setup before any Airflow component starts.
set -euo pipefail

# The admin's password comes from stack/.env. Writing the passwords file ourselves means
# SimpleAuthManager never generates one and prints it to the api-server's log.
umask 077
python - <<'PY'
import json, os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
with open(path, "w") as f:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, f)
PY

airflow db migrate
