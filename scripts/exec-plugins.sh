#!/usr/bin/env bash
# Runs every CNI netconf in $NETCONFPATH (default /etc/cni/net.d) against a
# network namespace, the way a container runtime would:
#   exec-plugins.sh add|del|check CONTAINER_ID NETNS_PATH
# The plugins are looked up in $CNI_PATH (default /opt/cni/bin). The first
# netconf gets eth0, the next eth1, and so on. Extra CNI_ARGS may be given in
# $CNI_ARGS. stdout carries each plugin's result.
set -euo pipefail

usage() { echo "usage: $0 add|del|check CONTAINER_ID NETNS_PATH" >&2; exit 2; }
[ $# -eq 3 ] || usage
case "$1" in add|del|check) ;; *) usage ;; esac

command=$(tr '[:lower:]' '[:upper:]' <<<"$1")
contid=$2
netns=$3
netconfpath=${NETCONFPATH:-/etc/cni/net.d}
export CNI_PATH=${CNI_PATH:-/opt/cni/bin}
command -v jq >/dev/null || { echo "$0: jq is required" >&2; exit 2; }

shopt -s nullglob
confs=("$netconfpath"/*.conf)
[ ${#confs[@]} -gt 0 ] || { echo "$0: no *.conf in $netconfpath" >&2; exit 2; }
if [ "$command" = DEL ]; then
  # Tear down in the reverse order of ADD.
  for ((l = 0, r = ${#confs[@]} - 1; l < r; l++, r--)); do
    t=${confs[l]}; confs[l]=${confs[r]}; confs[r]=$t
  done
fi

i=0
status=0
for conf in "${confs[@]}"; do
  plugin=$(jq -r '.type' "$conf")
  if [ "$command" = DEL ]; then ifname="eth$(( ${#confs[@]} - 1 - i ))"; else ifname="eth$i"; fi
  i=$((i + 1))
  if ! CNI_COMMAND=$command CNI_CONTAINERID=$contid CNI_NETNS=$netns CNI_IFNAME=$ifname \
       CNI_ARGS=${CNI_ARGS:-} "$CNI_PATH/$plugin" <"$conf"; then
    echo "$0: $plugin $command failed for $conf" >&2
    status=1
    [ "$command" = DEL ] || exit 1
  fi
done
exit $status
