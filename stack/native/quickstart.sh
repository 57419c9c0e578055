#!/usr/bin/env bash
# The README's first command: install, start the native stack, and push a message through it end to end.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash stack/native/install.sh
F=.venv/bin/fraudctl
$F up
$F status
# A message through the stack: produce to `transactions`, read it back.
id="quickstart-$(date +%s)"
msg="{\"transaction_id\": \"$id\", \"tx_datetime\": \"2018-04-01T00:00:00Z\", \"customer_id\": 1, \"terminal_id\": 1, \"amount\": 42.0}"
echo "$msg" | kcat -q -b 127.0.0.1:9092 -t transactions -k 1 -P
kcat -q -b 127.0.0.1:9092 -t transactions -C -o beginning -e | grep -F "$id" >/dev/null
echo "quickstart: message $id went through Kafka"
echo "quickstart: stack is up. Stop it with: $F down"
