#!/usr/bin/env bash
# The `kafka` service of stack/compose.yaml: a single-node KRaft broker (broker and controller), run from the
# jars of stack/native/jvm/kafka/pom.xml as the native runtime runs it.
#
# Every KAFKA_* variable but KAFKA_HEAP_OPTS becomes a broker property, as in Apache's own image:
# KAFKA_LOG_DIRS -> log.dirs, KAFKA_ADVERTISED_LISTENERS -> advertised.listeners (compose.yaml sets them).
# On the first start (no meta.properties in the log dir) the storage is formatted, --standalone: the
# controller quorum is this node (controller.quorum.bootstrap.servers), as natively.
set -euo pipefail
libs='/opt/kafka/libs/*'
conf_dir="$(mktemp -d)"
conf="$conf_dir/server.properties"
{
  echo "process.roles=broker,controller"
  echo "node.id=${KAFKA_NODE_ID:-1}"
  while IFS='=' read -r name value; do
    case "$name" in KAFKA_HEAP_OPTS|KAFKA_NODE_ID) continue ;; esac
    key="$(echo "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' | tr '_' '.')"
    echo "$key=$value"
  done < <(env | grep -E '^KAFKA_[A-Z0-9_]+=' | sort)
} > "$conf"

data="$(sed -n 's/^log\.dirs=//p' "$conf")"
if [ ! -f "${data:?KAFKA_LOG_DIRS is required}/meta.properties" ]; then
  cluster_id="$(java -cp "$libs" kafka.tools.StorageTool random-uuid)"
  java -cp "$libs" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$conf"
fi
# shellcheck disable=SC2086  # the heap options are several words
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/fraudctl/kafka-log4j2.yaml -cp "$libs" kafka.Kafka "$conf"
