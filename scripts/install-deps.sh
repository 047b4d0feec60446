#!/usr/bin/env bash
# Installs what ratchet's demo and tests need on a fresh Debian machine (as
# root): iproute2, ping, busybox-static (the test image), docker.io (a
# private dockerd for the Docker-label tests), etcd-server, jq, graphviz,
# containerd, runc and iptables (the nodes of the real-cluster suite,
# make test-k8s), and the Go modules. Go itself must be on the machine
# (/usr/local/go).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/go/bin:$PATH

need=()
for pkg in make git iproute2 iputils-ping busybox-static docker.io etcd-server jq graphviz procps kmod util-linux containerd runc iptables gcc libc6-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
modprobe vxlan 2>/dev/null || true
modprobe veth 2>/dev/null || true
command -v go >/dev/null || { echo "Go is required (/usr/local/go/bin/go)" >&2; exit 1; }
go mod download
