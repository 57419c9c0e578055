#!/usr/bin/env bash
# The README's first command on a fresh machine: install everything (stack/native/install.sh), then run the
# whole loop on the native runtime (stack/loop.sh: the stack up, simulated transactions, a first model
# trained and made @champion, the streaming scorer, paced replay with delayed labels, a retrain on Airflow,
# a summary). Its settings (DAYS, RATE, ...) pass through; see stack/loop.sh. The stack stays up afterwards:
# `.venv/bin/fraudctl down` stops it.
# RUNTIME picks the runtime (native by default, whether or not a Docker engine answers: `runtime.kind: auto`
# would otherwise switch to compose where one does); RUNTIME=compose runs the loop's commands on compose.
set -euo pipefail
cd "$(dirname "$0")/../.."
export FRAUDCTL_RUNTIME__KIND="${RUNTIME:-native}"
echo "quickstart: the $FRAUDCTL_RUNTIME__KIND runtime"
bash stack/native/install.sh
exec bash stack/loop.sh
