#!/usr/bin/env bash
# The README's first command: install, start the native stack, and run the main job end to end:
# simulate transactions, replay them into Kafka (labels delayed), train a model on a time-ordered split,
# register it in MLflow and make it @champion, then start the streaming scorer and let it score every
# replayed transaction. Stop the stack afterwards with `.venv/bin/fraudctl down`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash stack/native/install.sh
F=.venv/bin/fraudctl
$F up
$F generate --days 60 --out data/quickstart.csv
$F replay data/quickstart.csv
$F train --data data/quickstart.csv --promote-if-better
$F models list
$F scorer start
# Wait (at most 10 minutes) until the scorer has read everything in Kafka.
for _ in $(seq 600); do
  if $F scorer status -o json | .venv/bin/python -c '
import json, sys
status = json.load(sys.stdin)
lag = sum(n for partitions in status["lag"].values() for n in partitions.values())
sys.exit(0 if status["counters"].get("scored") and status["lag"] and lag == 0 else 1)'; then break; fi
  sleep 1
done
$F scorer status
$F scores tail --alerts -n 5
echo "quickstart: done. The stack is still up: fraudctl status | fraudctl down"
