#!/usr/bin/env bash
# Builds the third-party binaries of the real-cluster suite (test/k8s) from
# the Go module proxy into a cache directory keyed by version, and prints
# that directory's bin path. Nothing is written into the repository: each
# program is built from a scratch module in the cache directory, so a second
# run (or a fresh cache directory with a warm Go build cache) takes seconds.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
#       k8s.io/kubernetes (K8S_VERSION) with every k8s.io staging module
#       replaced by its served v0.Y.Z, CGO_ENABLED=0
#   flanneld    github.com/flannel-io/flannel (FLANNEL_VERSION), cgo; the
#       tencentvpc backend import is dropped from a copy of main.go because
#       one of its dependencies is refused by the proxy (403)
#   flannel     the flannel CNI plugin, from containernetworking/plugins
#       v0.9.1 (the last release that carried plugins/meta/flannel)
#   etcd        go.etcd.io/etcd/server/v3 (ETCD_VERSION, the version of the
#       main module's etcd), for the apiserver, flanneld and ratchet's etcd image
#
# Usage: scripts/k8s-binaries.sh [cache-dir]   (default ~/.cache/ratchet)
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
K8S_VERSION=${K8S_VERSION:-v1.37.2}
FLANNEL_VERSION=${FLANNEL_VERSION:-v0.28.10}
CNI_PLUGINS_FLANNEL_VERSION=v0.9.1
ETCD_VERSION=${ETCD_VERSION:-v3.5.35}
cache=${1:-${RATCHET_CACHE:-$HOME/.cache/ratchet}}
dir=$cache/k8s-$K8S_VERSION
bin=$dir/bin
mkdir -p "$bin"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "k8s-binaries: $*" >&2; }

# scratch <dir> <module-name>: an empty module directory.
scratch() {
  mkdir -p "$1"
  [ -f "$1/go.mod" ] || (cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl) missing=0
  for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing=1; done
  [ $missing = 1 ] || return 0
  local m=$dir/src/kubernetes staging=v0.${K8S_VERSION#v1.}
  scratch "$m" ratchet.test/k8sbuild
  cd "$m"
  local mods
  mods=$(curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$K8S_VERSION.mod" 2>/dev/null |
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p') || true
  if [ -z "$mods" ]; then
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    mods=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' \
      "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod")
  fi
  for mod in $mods; do go mod edit -replace "$mod=$mod@$staging"; done
  go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving k8s.io/kubernetes@$K8S_VERSION"
  GOFLAGS="$GOFLAGS -tags=tools" go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
  log "building kubernetes $K8S_VERSION (cold: about 7 min on 2 cores)"
  CGO_ENABLED=0 go build -o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
}

build_flanneld() {
  [ -x "$bin/flanneld" ] && return 0
  local m=$dir/src/flannel
  scratch "$m" ratchet.test/flannelbuild
  cd "$m"
  go mod download -json "github.com/flannel-io/flannel@$FLANNEL_VERSION" >/dev/null
  local src
  src=$(go mod download -json "github.com/flannel-io/flannel@$FLANNEL_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  # A throwaway copy of the module with main.go minus the tencentvpc backend.
  rm -rf "$m/mod" && cp -r "$src" "$m/mod" && chmod -R u+w "$m/mod"
  sed -i '/pkg\/backend\/tencentvpc/d' "$m/mod/main.go"
  cd "$m/mod"
  sed -i '/tencentcloud/d' go.mod
  log "building flanneld $FLANNEL_VERSION (cgo; cold: about 2.5 min)"
  CGO_ENABLED=1 GOFLAGS="$GOFLAGS -mod=mod" go build -o "$bin/flanneld" .
}

build_cni_flannel() {
  [ -x "$bin/flannel" ] && return 0
  local m=$dir/src/cni-flannel
  scratch "$m" ratchet.test/cniflannelbuild
  cd "$m"
  go get "github.com/containernetworking/plugins/plugins/meta/flannel@$CNI_PLUGINS_FLANNEL_VERSION" >/dev/null
  CGO_ENABLED=0 go build -o "$bin/flannel" github.com/containernetworking/plugins/plugins/meta/flannel
}

build_etcd() {
  [ -x "$bin/etcd" ] && return 0
  local m=$dir/src/etcd
  scratch "$m" ratchet.test/etcdbuild
  cd "$m"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
  CGO_ENABLED=0 go build -o "$bin/etcd" go.etcd.io/etcd/server/v3
}

start=$(date +%s)
build_cni_flannel
build_etcd
build_kubernetes
build_flanneld
log "ready in $(( $(date +%s) - start ))s: $bin"
echo "$bin"
