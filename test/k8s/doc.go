// Package k8s is ratchet's real-cluster suite: the examples of examples/k8s
// applied with kubectl to a two-node Kubernetes cluster (internal/k8senv:
// kubelet + containerd + flanneld per node), with flannel as the master
// delegate. It runs under `make test-k8s` (as root); elsewhere it skips,
// and under CI it fails instead of skipping.
package k8s
