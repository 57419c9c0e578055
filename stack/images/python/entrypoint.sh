#!/usr/bin/env bash
# Entry point of the fraudctl/python image. The scorer runs as the host user's uid (so the files it writes
# into the host's <state_dir>/scorer stay the host user's), which has no entry in the image's /etc/passwd;
# Java then has no user name and Hadoop's login fails. nss_wrapper lends it one, for this process tree only.
set -euo pipefail
if ! getent passwd "$(id -u)" > /dev/null; then
  export NSS_WRAPPER_PASSWD="${TMPDIR:-/tmp}/fraudctl-passwd" NSS_WRAPPER_GROUP=/etc/group
  { cat /etc/passwd; echo "fraudctl:x:$(id -u):$(id -g):fraudctl:${HOME:-/tmp}:/usr/sbin/nologin"; } > "$NSS_WRAPPER_PASSWD"
  LD_PRELOAD="$(find /usr/lib -name libnss_wrapper.so -print -quit)"
  export LD_PRELOAD
fi
exec "$@"
