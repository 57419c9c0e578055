#!/usr/bin/env bash
# Installs what fraudctl's native runtime and its tests need on a Debian/Ubuntu machine:
# system packages (Java 17+, Maven, PostgreSQL, Redis, kcat), the Python venv (.venv) with fraudctl
# in editable mode, and the JVM jars (Kafka broker, Spark connectors) resolved by Maven into the cache.
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v kcat >/dev/null 2>&1 || need+=(kcat)  # the reference producer of bench/
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "install: apt packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian packages start their own servers on the default ports; fraudctl runs its own.
for svc in postgresql redis-server; do
  if command -v service >/dev/null 2>&1 && service "$svc" status >/dev/null 2>&1; then $SUDO service "$svc" stop || true; fi
done

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"

echo "install: resolving JVM jars with Maven"
.venv/bin/python - <<'PY'
from fraudctl.runtime import jvm
for pom in (jvm.KAFKA_POM, jvm.SPARK_POM):
    print("  ", jvm.resolve(pom))
PY
echo "install: done"
