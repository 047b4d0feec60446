#!/bin/bash
# delete_etcd.sh [ratchetctl flags...]
#
# Removes everything under ratchet's etcd prefix (default /ratchet), as the
# first ratchet's delete_etcd.sh did. etcd comes from ETCD_* or flags.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# ratchetctl: $RATCHETCTL, else ../bin/ratchetctl (make build), else on PATH.
ctl=${RATCHETCTL:-$here/../bin/ratchetctl}
[ -x "$ctl" ] || ctl=$(command -v ratchetctl) || { echo "$0: ratchetctl not found in $here/../bin or on PATH" >&2; exit 1; }
exec "$ctl" delete --all --yes "$@"
