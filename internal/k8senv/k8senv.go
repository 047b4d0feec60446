// Package k8senv starts a real Kubernetes cluster for ratchet's real-cluster
// suite (test/k8s): one control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) and two nodes, each with its own
// containerd, kubelet and flanneld, all in network namespaces joined by an
// underlay bridge. Every file, process, mount, netns, cgroup and global
// sysctl it makes or changes is removed or restored by t.Cleanup, also when
// the test fails.
//
// Each node is a network namespace plus a mount and UTS namespace held by a
// sleeping "holder" process: inside it /run, /var/log, /var/lib/cni,
// /opt/cni/bin and /etc/cni/net.d are bind mounts of the node's own
// directories, and the hostname is the node's name. So the manifests'
// hostPaths and the plugins' default paths mean the node's directories, and
// every mount the kubelet and containerd make dies with the namespace.
//
// The third-party binaries are built by scripts/k8s-binaries.sh into a cache
// keyed by version (see BinariesDir); images are made here from Debian's
// busybox-static and ratchet's own binaries and imported into every node.
package k8senv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// Versions of the third-party components (see scripts/k8s-binaries.sh).
const (
	KubernetesVersion = "v1.37.2"
	FlannelVersion    = "v0.28.10"
	// FlannelCNIVersion is the containernetworking/plugins release whose
	// plugins/meta/flannel is the flannel CNI plugin (CNI up to 0.4.0).
	FlannelCNIVersion = "v0.9.1"
	EtcdVersion       = "v3.5.35"
)

// Addresses of the test bed. They exist only inside its network namespaces.
const (
	// UnderlayPrefix is the underlay subnet's prefix length.
	UnderlayPrefix = 24
	// ControlPlaneIP is the control plane's underlay address (etcd on
	// 2379, the apiserver on 6443).
	ControlPlaneIP = "10.200.0.10"
	// ServiceCIDR is the cluster's Service range; it holds
	// examples/k8s/etcd.yaml's ClusterIP 10.96.232.136.
	ServiceCIDR = "10.96.0.0/12"
	// PodCIDR is flannel's network; each node gets a /24 of it.
	PodCIDR = "10.244.0.0/16"
	// FlannelPrefix is flanneld's key prefix in the control plane's etcd.
	FlannelPrefix = "/coreos.com/network"
)

// Timeouts of the waits.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = 15 * time.Second
	cmdTimeout   = 2 * time.Minute
)

// Options are the knobs of Start; the zero value is two nodes.
type Options struct {
	// Nodes is the number of nodes (1 or 2; 0 means 2).
	Nodes int
	// CacheDir holds the built binaries (default $RATCHET_CACHE, else
	// ~/.cache/ratchet).
	CacheDir string
}

// Cluster is a running test cluster.
type Cluster struct {
	// Nodes are the worker nodes, in order (node names "<id>-n1", …).
	Nodes []*Node
	// ControlPlane is the control plane's network namespace.
	ControlPlane *testenv.NS
	// Bin is the directory of the third-party binaries.
	Bin string
	// RatchetBin is the directory of ratchet's own static binaries.
	RatchetBin string
	// Dir is the cluster's temporary directory (logs under Dir/logs).
	Dir string
	// ID is the unique name of this run, a prefix of every node and cgroup.
	ID string
	// Timings records how long each start-up phase took.
	Timings []Timing

	underlay   *testenv.NS
	pki        *pki
	kubeconfig string
	mu         sync.Mutex
	procs      []*proc
}

// Timing is one measured phase of Start.
type Timing struct {
	Phase string
	Took  time.Duration
}

// Start builds (or finds cached) binaries and images, starts the control
// plane and the nodes, and waits until every node is Ready. Everything is
// torn down when t ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("/tmp", "rk8s-")
	if err != nil {
		t.Fatalf("cluster dir: %v", err)
	}
	c := &Cluster{Dir: dir, ID: "rk" + strings.TrimPrefix(filepath.Base(dir), "rk8s-")}
	c.ID = strings.ToLower(c.ID)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	restore := snapshotSysctls()
	t.Cleanup(func() { restore(t) })
	// teardown runs once, before the cleanups the steps register (netns,
	// mount points): it is registered again after every step.
	var once sync.Once
	teardown := func() { once.Do(func() { c.teardown(t) }) }
	t.Cleanup(teardown)
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"binaries", func(ctx context.Context) error { return c.binaries(ctx, opts.CacheDir) }},
		{"images", c.buildImages},
		{"network", func(ctx context.Context) error { return c.network(t, opts.Nodes) }},
		{"control plane", c.startControlPlane},
		{"nodes", c.startNodes},
	}
	for _, s := range steps {
		start := time.Now()
		err := s.fn(ctx)
		t.Cleanup(teardown)
		if err != nil {
			t.Fatalf("start cluster: %s: %v\n%s", s.name, err, c.LogTails())
		}
		c.Timings = append(c.Timings, Timing{s.name, time.Since(start)})
		t.Logf("cluster %s: %s ready in %v", c.ID, s.name, time.Since(start).Round(time.Millisecond))
	}
	return c
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeAddresses returns the nodes' underlay addresses, in order.
func (c *Cluster) NodeAddresses() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.IP)
	}
	return out
}

// LogTails returns the last lines of every component's log, for failure
// messages.
func (c *Cluster) LogTails() string {
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "--- %s (tail of %s)\n%s\n", p.name, p.logPath, tail(p.logPath, 1500))
	}
	return b.String()
}

// tail returns the last max bytes of a file.
func tail(path string, max int) string {
	b, _ := os.ReadFile(path)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
