#!/usr/bin/env bash
# The first ratchet's development flow, without Kubernetes:
#   docker-run-custom.sh [--label-file FILE] DOCKER_RUN_ARGS... IMAGE [COMMAND...]
# 1. starts an infra container (the pod sandbox) with --net=none and the
#    labels of FILE (default ./primary.label),
# 2. runs the CNI plugins of $NETCONFPATH (ratchet) for it, with its real
#    container ID and netns (exec-plugins.sh add),
# 3. runs the app container in the infra container's network
#    (--net=container:ID) with the remaining arguments,
# and on exit (also on error or interrupt) runs DEL and removes the infra
# container. Environment: NETCONFPATH, CNI_PATH, DOCKER (the CLI, default
# docker), DOCKER_HOST, INFRA_IMAGE (default busybox:latest).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
infra_image=${INFRA_IMAGE:-busybox:latest}
label_file=./primary.label
if [ "${1:-}" = "--label-file" ]; then
  [ $# -ge 2 ] || { echo "$0: --label-file needs a file" >&2; exit 2; }
  label_file=$2
  shift 2
fi
[ -r "$label_file" ] || { echo "$0: cannot read label file $label_file" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: $0 [--label-file FILE] DOCKER_RUN_ARGS... IMAGE [COMMAND...]" >&2; exit 2; }

contid=$("$docker" run -d --net=none --label-file "$label_file" "$infra_image" /bin/sleep 10000000)
netnspath=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$netnspath" ]; then
    "$here/exec-plugins.sh" del "$contid" "$netnspath" >/dev/null || status=1
  fi
  "$docker" rm -f "$contid" >/dev/null 2>&1 || true
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pid=$("$docker" inspect -f '{{ .State.Pid }}' "$contid")
netnspath=/proc/$pid/ns/net
"$here/exec-plugins.sh" add "$contid" "$netnspath" >/dev/null
"$docker" run --net=container:"$contid" "$@"
