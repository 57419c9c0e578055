#!/usr/bin/env bash
# Installs what fraudctl's native runtime and its tests need on a Debian/Ubuntu machine:
# system packages (Java 17+, Maven, PostgreSQL, Redis, kcat), the Python venv (.venv) with fraudctl
# in editable mode, and the JVM jars (Kafka broker, Spark connectors, S3Proxy) resolved by Maven into the cache.
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
ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1' || need+=(libgomp1)  # LightGBM's OpenMP runtime
# The distribution's Python first: Debian and Ubuntu build it with profile-guided and link-time
# optimisation, which a pyenv or source build lacks unless asked; replay's producing loop runs ~15 % faster
# on it. PYTHON=... chooses another.
if [ -z "${PYTHON:-}" ]; then
  for candidate in /usr/bin/python3.11 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "install: apt packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian packages start their own servers on the default ports; fraudctl runs its own.
for svc in postgresql redis-server; do
  if command -v service >/dev/null 2>&1 && service "$svc" status >/dev/null 2>&1; then $SUDO service "$svc" stop || true; fi
done

want="$(readlink -f "$(command -v "$PYTHON")")"
if [ -f .venv/pyvenv.cfg ]; then
  have="$(sed -n 's/^executable = //p' .venv/pyvenv.cfg)"
  if [ "$(readlink -f "$have")" != "$want" ]; then
    echo "install: .venv was made by $have; recreating it with $want"
    rm -rf .venv
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"

echo "install: resolving JVM jars with Maven"
.venv/bin/python - <<'PY'
from fraudctl.clients import jvm
for pom in (jvm.KAFKA_POM, jvm.SPARK_POM, jvm.S3PROXY_POM):
    print("  ", jvm.resolve(pom))
PY
echo "install: done"
