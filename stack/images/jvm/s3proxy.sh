#!/usr/bin/env bash
# The `objectstore` service of stack/compose.yaml: S3Proxy with the native runtime's settings
# (fraudctl/stack/services.py, s3proxy_properties): the filesystem-nio2 backend, AWS v2/v4 signatures, unknown
# SDK headers ignored. The keys come from the environment (stack/.env through compose) into a properties file
# on /dev/shm (memory, mode 0600): never an image layer, never a process argument.
set -euo pipefail
umask 077
props=/dev/shm/s3proxy.properties
cat > "$props" <<PROPS
s3proxy.endpoint=http://0.0.0.0:9000
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=${S3PROXY_IDENTITY:?}
s3proxy.credential=${S3PROXY_CREDENTIAL:?}
s3proxy.ignore-unknown-headers=true
jclouds.provider=filesystem-nio2
jclouds.filesystem.basedir=/var/lib/s3proxy/data
jclouds.identity=${S3PROXY_IDENTITY}
jclouds.credential=${S3PROXY_CREDENTIAL}
PROPS
unset S3PROXY_IDENTITY S3PROXY_CREDENTIAL
# shellcheck disable=SC2086
exec java -Xmx${S3PROXY_HEAP:-256m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
  -Dlogback.configurationFile=/opt/fraudctl/s3proxy-logback.xml \
  -cp '/opt/s3proxy/libs/*' org.gaul.s3proxy.Main --properties "$props"
