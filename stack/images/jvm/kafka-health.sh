#!/usr/bin/env bash
# The kafka service's health check: a real Kafka request, without a JVM. It sends ApiVersions (API key 18,
# version 0, correlation id 1, client id "hlth") to the INTERNAL listener and requires the broker's answer to
# carry correlation id 1 and error code 0. Costs a few milliseconds; a client JVM would cost ~1 s of CPU and
# 60 MiB each time.
set -euo pipefail
exec 3<>"/dev/tcp/127.0.0.1/${1:-19092}"
printf '\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04hlth' >&3
answer="$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')"
exec 3>&-
# 4 bytes of length, then correlation id 00000001, then error code 0000
[ "${answer:8:12}" = "000000010000" ] || { echo "unexpected ApiVersions answer: ${answer:-none}" >&2; exit 1; }
