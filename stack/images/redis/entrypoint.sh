#!/usr/bin/env bash
# The `redis` service of stack/compose.yaml. The password comes from the environment (stack/.env through
# compose) into a configuration file on /dev/shm (memory, mode 0600): `requirepass` on the command line
# would show it to anyone who lists processes.
set -euo pipefail
umask 077
conf=/dev/shm/redis.conf
cat > "$conf" <<CONF
bind * -::*
port 6379
protected-mode no
daemonize no
dir /data
appendonly yes
save 60 1000
requirepass "${REDIS_PASSWORD:?}"
CONF
unset REDIS_PASSWORD
exec redis-server "$conf"
