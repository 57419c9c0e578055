#!/usr/bin/env bash
# The README's first command: install, start the native stack, and run the main job end to end:
# simulate transactions, replay them into Kafka (labels delayed), train a model on a time-ordered split,
# register it in MLflow and make it @champion. Stop the stack afterwards with `.venv/bin/fraudctl down`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash stack/native/install.sh
F=.venv/bin/fraudctl
$F up
$F generate --days 60 --out data/quickstart.csv
$F replay data/quickstart.csv
$F train --data data/quickstart.csv --promote-if-better
$F models list
echo "quickstart: done. The stack is still up: fraudctl status | fraudctl down"
