package k8senv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Paths inside a node (its own directories, see hostMountpoints).
const (
	containerdSock = "/run/containerd/containerd.sock"
	cniBinDir      = "/opt/cni/bin"
	cniConfDir     = "/etc/cni/net.d"
	// FlannelConflist is the netconf a flannel DaemonSet would install: it
	// makes the node Ready before ratchet's installer runs. ratchet's
	// 00-ratchet.conf sorts before it and takes over.
	FlannelConflist = "10-flannel.conflist"
	flannelConflist = `{
  "name": "cbr0",
  "cniVersion": "0.4.0",
  "plugins": [
    { "type": "flannel", "delegate": { "hairpinMode": true, "isDefaultGateway": true, "ipMasq": false } }
  ]
}
`
)

// NodePlugins are the CNI plugins every node has before ratchet is
// installed: the reference plugins of go.mod (as a distribution package
// would provide them) and the flannel plugin (as flannel's DaemonSet would).
var NodePlugins = []string{"loopback", "bridge", "host-local", "portmap", "flannel"}

// cgroupRoot is the node's kubelet cgroup root (one per node, so that two
// kubelets on one machine never share a cgroup).
func (n *Node) cgroupRoot() string { return "/" + n.Name }

// startNodes brings every node up: CNI plugins and flannel's netconf,
// containerd with the images, flanneld, then the kubelet; and waits until
// every node is Ready.
func (c *Cluster) startNodes(ctx context.Context) error {
	errs := make(chan error, len(c.Nodes))
	for _, n := range c.Nodes {
		go func() { errs <- c.startNode(ctx, n) }()
	}
	for range c.Nodes {
		if err := <-errs; err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		err := waitFor(ctx, startTimeout, 500*time.Millisecond, "node "+n.Name+" Ready", func() error {
			if err := n.kubelet.alive(); err != nil {
				return err
			}
			out, err := c.Kubectl(ctx, "get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if err != nil {
				return err
			}
			if out != "True" {
				return fmt.Errorf("Ready=%q", out)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return waitFor(ctx, startTimeout, 500*time.Millisecond, "default ServiceAccount", func() error {
		_, err := c.Kubectl(ctx, "get", "serviceaccount", "default", "-n", "default")
		return err
	})
}

// startNode starts one node's components.
func (c *Cluster) startNode(ctx context.Context, n *Node) error {
	for _, p := range NodePlugins {
		if err := copyFile(filepath.Join(c.RatchetBin, p), n.HostPath(filepath.Join(cniBinDir, p)), 0o755); err != nil {
			return fmt.Errorf("node %s: install CNI plugin %s: %w", n.Name, p, err)
		}
	}
	if err := writeFile(n.HostPath(filepath.Join(cniConfDir, FlannelConflist)), flannelConflist); err != nil {
		return err
	}
	if err := c.startContainerd(ctx, n); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := c.importImages(ctx, n); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := c.startFlanneld(ctx, n); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := makeCgroupRoot(n.cgroupRoot()); err != nil {
		return fmt.Errorf("node %s: cgroup root: %w", n.Name, err)
	}
	if err := c.startKubelet(n); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}

// containerdConfig is a node's containerd configuration: its root under the
// node's Dir, its state, socket and runc root under the node's /run, the
// CRI plugin as the facts require (cgroupfs, restricted OOM score
// adjustments, the local pause image). The pods' netns are where containerd
// puts them by default, /var/run/netns (the node's /run/netns), which
// ratchetd's DaemonSet mounts.
const containerdConfig = `version = 2
root = %q
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "/run/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`

func (c *Cluster) startContainerd(ctx context.Context, n *Node) error {
	conf := filepath.Join(n.Dir, "containerd", "config.toml")
	text := fmt.Sprintf(containerdConfig, filepath.Join(n.Dir, "containerd", "root"), containerdSock,
		filepath.Join(n.Dir, "containerd", "opt"), PauseImage, cniBinDir, cniConfDir)
	if err := writeFile(conf, text); err != nil {
		return err
	}
	p, err := c.startProc(n.Name+"-containerd", append(n.Enter(), "containerd", "--config", conf)...)
	if err != nil {
		return err
	}
	n.containerd = p
	return waitFor(ctx, startTimeout, 100*time.Millisecond, "containerd", func() error {
		if err := p.alive(); err != nil {
			return err
		}
		_, err := n.Exec(ctx, "ctr", "-a", containerdSock, "version")
		return err
	})
}

// startFlanneld starts flanneld with the control plane's etcd as its store
// and waits for its subnet file (/run/flannel/subnet.env of the node).
func (c *Cluster) startFlanneld(ctx context.Context, n *Node) error {
	p, err := c.startProc(n.Name+"-flanneld", append(n.Enter(), filepath.Join(c.Bin, "flanneld"),
		"--etcd-endpoints=http://"+ControlPlaneIP+":2379", "--etcd-prefix="+FlannelPrefix,
		"--iface=eth0", "--ip-masq=false", "--iptables-forward-rules=false",
		"--subnet-file=/run/flannel/subnet.env")...)
	if err != nil {
		return err
	}
	n.flannel = p
	return waitFor(ctx, startTimeout, 100*time.Millisecond, "flanneld subnet file", func() error {
		if err := p.alive(); err != nil {
			return err
		}
		_, err := os.Stat(n.HostPath("/run/flannel/subnet.env"))
		return err
	})
}

// kubeletConfig is a node's KubeletConfiguration: cgroupfs under the node's
// own cgroup root (cgroup v1 allowed), serving on the node's address,
// anonymous access for the apiserver's exec/logs (test only), no kernel
// tunables enforced, image GC and eviction out of the way.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
containerRuntimeEndpoint: unix://%s
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
volumePluginDir: %s
failSwapOn: false
protectKernelDefaults: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
`

func (c *Cluster) startKubelet(n *Node) error {
	kubeconfig, err := c.pki.kubeconfig("kubelet-"+n.Name, "system:node:"+n.Name, "system:nodes")
	if err != nil {
		return err
	}
	conf := filepath.Join(n.Dir, "kubelet.yaml")
	text := fmt.Sprintf(kubeletConfig, n.cgroupRoot(), containerdSock, n.IP, filepath.Join(n.Dir, "volume-plugins"))
	if err := writeFile(conf, text); err != nil {
		return err
	}
	p, err := c.startProc(n.Name+"-kubelet", append(n.Enter(), filepath.Join(c.Bin, "kubelet"),
		"--config="+conf, "--kubeconfig="+kubeconfig,
		"--root-dir="+filepath.Join(n.Dir, "kubelet"), "--cert-dir="+filepath.Join(n.Dir, "kubelet-pki"),
		"--hostname-override="+n.Name, "--node-ip="+n.IP, "--v=1")...)
	if err != nil {
		return err
	}
	n.kubelet = p
	return nil
}

// copyFile copies src to dst with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// Pids returns the processes that belong to the node: those in its mount
// namespace (containerd, kubelet, flanneld, shims, ratchet's detached
// processes; until teardown released it) and those in its cgroups (the
// pods' containers).
func (n *Node) Pids() []int {
	mnt := n.mntNS
	return pidsWhere(func(pid int) bool {
		if m, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); mnt != "" && m == mnt {
			return true
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return strings.Contains(string(cg), ":"+n.cgroupRoot()+"/") || strings.Contains(string(cg), ":"+n.cgroupRoot()+"\n")
	})
}

// makeCgroupRoot creates the kubelet's cgroup root in every hierarchy (the
// kubelet requires it to exist); a cpuset cgroup gets its parent's CPUs and
// memory nodes. teardown removes it with everything below.
func makeCgroupRoot(root string) error {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hier {
		if st, err := os.Stat(h); err != nil || !st.IsDir() {
			continue
		}
		dir := filepath.Join(h, root)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}
