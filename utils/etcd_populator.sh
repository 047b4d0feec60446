#!/bin/bash
# etcd_populator.sh CONTAINERID [ratchetctl flags...]
#
# Announces the first ratchet's example primary pod (primary-pod: in1
# 192.168.2.100 -> pair-pod in2 192.168.2.101), as its etcd_populator.sh did.
# The container ID is kept as ratchet.target_container; ratchet finds the
# record by pod name. etcd comes from ETCD_ENDPOINTS, ETCD_API, ETCD_PREFIX...
# or flags (see `ratchetctl help`).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 CONTAINERID [ratchetctl flags...]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# ratchetctl: $RATCHETCTL, else ../bin/ratchetctl (make build), else on PATH.
ctl=${RATCHETCTL:-$here/../bin/ratchetctl}
[ -x "$ctl" ] || ctl=$(command -v ratchetctl) || { echo "$0: ratchetctl not found in $here/../bin or on PATH" >&2; exit 1; }
id=$1
shift
exec "$ctl" populate primary --container "$id" "$@"
