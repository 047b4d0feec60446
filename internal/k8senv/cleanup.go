package k8senv

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// GlobalSysctls are the machine-wide settings the components are known to
// touch (the kubelet's kernel tunables) or that the other suites depend on
// (forwarding, bridge netfilter). Start snapshots them and restores them at
// the end; the node components change only their own netns's copies.
var GlobalSysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv6.conf.all.forwarding",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.bridge.bridge-nf-call-arptables",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// ReadSysctls returns the current values of GlobalSysctls (those that
// exist) in the caller's netns.
func ReadSysctls() map[string]string {
	vals := map[string]string{}
	for _, s := range GlobalSysctls {
		if b, err := os.ReadFile(sysctlPath(s)); err == nil {
			vals[s] = strings.TrimSpace(string(b))
		}
	}
	return vals
}

// snapshotSysctls returns a function that restores GlobalSysctls to their
// current values and logs what it restored.
func snapshotSysctls() func(testing.TB) {
	before := ReadSysctls()
	return func(t testing.TB) {
		now := ReadSysctls()
		for s, v := range before {
			if now[s] == v {
				continue
			}
			t.Logf("restoring %s: %s (was changed to %s)", s, v, now[s])
			if err := os.WriteFile(sysctlPath(s), []byte(v), 0o644); err != nil {
				t.Errorf("restore %s: %v", s, err)
			}
		}
	}
}

// binaries runs scripts/k8s-binaries.sh (a no-op when its cache is warm)
// and checks that every binary is there.
func (c *Cluster) binaries(ctx context.Context, cacheDir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	argv := []string{"bash", filepath.Join(root, "scripts", "k8s-binaries.sh")}
	if cacheDir != "" {
		argv = append(argv, cacheDir)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "K8S_VERSION="+KubernetesVersion, "FLANNEL_VERSION="+FlannelVersion, "ETCD_VERSION="+EtcdVersion)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return fmt.Errorf("scripts/k8s-binaries.sh: %w: %s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	c.Bin = lines[len(lines)-1]
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "flanneld", "flannel", "etcd"} {
		if _, err := os.Stat(filepath.Join(c.Bin, b)); err != nil {
			return fmt.Errorf("binary %s: %w", b, err)
		}
	}
	return nil
}

// teardown stops every component, kills what the nodes left (pods' processes,
// shims, ratchet's detached processes), releases the nodes' mount namespaces
// and removes the nodes' cgroups.
func (c *Cluster) teardown(t testing.TB) {
	if t.Failed() {
		t.Log(c.LogTails())
	}
	for _, n := range c.Nodes {
		if n.kubelet != nil {
			if err := n.kubelet.stop(); err != nil {
				t.Error(err)
			}
		}
	}
	for _, n := range c.Nodes {
		killAll(t, n)
	}
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(); err != nil {
			t.Error(err)
		}
	}
	for _, n := range c.Nodes {
		if left := n.Pids(); len(left) > 0 {
			t.Errorf("node %s: processes left: %s", n.Name, describePids(left))
		}
		n.releaseMountNS()
		removeCgroups(t, n.cgroupRoot())
	}
	unmountUnder(t, c.Dir)
}

// describePids names processes by PID, command line and cgroups, for
// failure messages.
func describePids(pids []int) string {
	var b strings.Builder
	for _, p := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p))
		first, _, _ := strings.Cut(string(cg), "\n")
		fmt.Fprintf(&b, "\n  %d: %s [%s]", p, strings.ReplaceAll(string(cmd), "\x00", " "), first)
	}
	return b.String()
}

// killAll kills the node's processes but its holder, until none is left.
func killAll(t testing.TB, n *Node) {
	holder := 0
	if n.holder != nil {
		holder = n.holder.cmd.Process.Pid
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var pids []int
		for _, p := range n.Pids() {
			if p != holder {
				pids = append(pids, p)
			}
		}
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("node %s: processes survive SIGKILL", n.Name)
}

// pidsWhere returns the PIDs (but this process's) for which keep is true.
func pidsWhere(keep func(pid int) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if keep(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeCgroups removes the cgroup root (a kubelet's cgroupRoot) and its
// descendants in every hierarchy, children first.
func removeCgroups(t testing.TB, root string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", root))
	if st, err := os.Stat(filepath.Join("/sys/fs/cgroup", root)); err == nil && st.IsDir() {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", root))
	}
	for _, top := range dirs {
		var all []string
		_ = filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			var err error
			for range 50 { // a cgroup is busy for a moment after its last task died
				if err = os.Remove(all[i]); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil && !os.IsNotExist(err) {
				t.Errorf("remove cgroup %s: %v", all[i], err)
			}
		}
	}
}

// unmountUnder lazily unmounts every mount at or below dir in this mount
// namespace (there should be none: the nodes mount in their own).
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		t.Logf("unmounting leftover %s", mounts[i])
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mounts[i], err)
		}
	}
}
