#!/bin/bash
# pair_etcd_populator.sh [CONTAINERID] [ratchetctl flags...]
#
# Announces the peer of etcd_populator.sh's pod (pair-pod: in2
# 192.168.2.101, waiting for primary-pod's in1), as the first ratchet's
# pair_etcd_populator.sh did. The container ID, when given, is kept as
# ratchet.target_container. etcd comes from ETCD_* or flags.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# ratchetctl: $RATCHETCTL, else ../bin/ratchetctl (make build), else on PATH.
ctl=${RATCHETCTL:-$here/../bin/ratchetctl}
[ -x "$ctl" ] || ctl=$(command -v ratchetctl) || { echo "$0: ratchetctl not found in $here/../bin or on PATH" >&2; exit 1; }
args=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  args=(--container "$1")
  shift
fi
exec "$ctl" populate pair "${args[@]}" "$@"
