package k8senv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// hostMountpoints are the node directories bound over host paths inside a
// node's mount namespace (host path → directory under the node's Dir).
var hostMountpoints = [][2]string{
	{"/run", "run"},
	{"/var/log", "log"},
	{"/var/lib/cni", "cni-lib"},
	{"/opt/cni/bin", "cni-bin"},
	{"/etc/cni/net.d", "cni-conf"},
}

// Node is one Kubernetes node: a network, mount and UTS namespace with its
// own containerd, kubelet and flanneld.
type Node struct {
	// Name is the node name and the hostname inside the node.
	Name string
	// IP is the node's underlay address (eth0).
	IP string
	// NS is the node's network namespace.
	NS *testenv.NS
	// Dir holds the node's files; the host paths of hostMountpoints are
	// bind mounts of its subdirectories inside the node.
	Dir string

	holder *proc
	mntNS  string // the holder's mount namespace ("mnt:[inode]")
	// mntRef holds the mount namespace until teardown has checked that no
	// process is left in it: a freed namespace's inode number is soon
	// reused by a new one (another test's container), which Pids would
	// then take for the node's.
	mntRef                       *os.File
	containerd, kubelet, flannel *proc
}

// Enter is the command-line prefix that runs a program inside the node's
// network, mount and UTS namespaces.
func (n *Node) Enter() []string {
	return []string{"nsenter", "-t", strconv.Itoa(n.holder.cmd.Process.Pid), "-m", "-u", "-n", "--"}
}

// Exec runs a short command inside the node and returns its stdout.
func (n *Node) Exec(ctx context.Context, argv ...string) (string, error) {
	out, err := run(ctx, nil, append(n.Enter(), argv...)...)
	if err != nil {
		return out, fmt.Errorf("on node %s: %w", n.Name, err)
	}
	return out, nil
}

// HostPath returns where a path inside the node (one of /run, /var/log,
// /var/lib/cni, /opt/cni/bin, /etc/cni/net.d or below) is on the host.
func (n *Node) HostPath(p string) string {
	for _, m := range hostMountpoints {
		if p == m[0] || strings.HasPrefix(p, m[0]+"/") {
			return filepath.Join(n.Dir, m[1], strings.TrimPrefix(p, m[0]))
		}
	}
	return p
}

// network makes the underlay (a bridge in its own netns), the control
// plane's netns and the nodes' netns, each joined to the bridge by a veth
// whose inside end is eth0.
func (c *Cluster) network(t testing.TB, nodes int) error {
	c.underlay = testenv.NewNS(t)
	c.ControlPlane = testenv.NewNS(t)
	ul := c.underlay.Name
	steps := [][]string{
		{"ip", "-n", ul, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", ul, "link", "set", "br0", "up"},
	}
	join := func(member *testenv.NS, port, addr string) {
		steps = append(steps,
			[]string{"ip", "-n", ul, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", member.Name},
			[]string{"ip", "-n", ul, "link", "set", port, "master", "br0", "up"},
			[]string{"ip", "-n", member.Name, "addr", "add", addr + "/" + strconv.Itoa(UnderlayPrefix), "dev", "eth0"},
			[]string{"ip", "-n", member.Name, "link", "set", "eth0", "up"},
		)
	}
	join(c.ControlPlane, "cp", ControlPlaneIP)
	for i := 1; i <= nodes; i++ {
		n := &Node{Name: fmt.Sprintf("%s-n%d", c.ID, i), IP: fmt.Sprintf("10.200.0.%d", 10+i), NS: testenv.NewNS(t)}
		n.Dir = filepath.Join(c.Dir, fmt.Sprintf("n%d", i))
		join(n.NS, fmt.Sprintf("n%d", i), n.IP)
		// A default route, as a real node has: ratchet's host.address
		// defaults to the default route's interface.
		steps = append(steps, []string{"ip", "-n", n.NS.Name, "route", "add", "default", "via", ControlPlaneIP},
			// Forwarding for the pods, inside the node's netns only.
			[]string{"ip", "netns", "exec", n.NS.Name, "sysctl", "-qw", "net.ipv4.ip_forward=1"})
		c.Nodes = append(c.Nodes, n)
	}
	ctx := context.Background()
	for _, s := range steps {
		if _, err := run(ctx, nil, s...); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := c.startHolder(t, n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

// startHolder starts the process that holds the node's mount and UTS
// namespaces: it enters the node's netns, unshares a mount namespace
// (propagation slave: nothing mounted inside reaches the host) and a UTS
// namespace, binds the node's directories over the host paths, makes the
// node's mounts shared among themselves, sets the hostname and sleeps.
func (c *Cluster) startHolder(t testing.TB, n *Node) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, m := range hostMountpoints {
		src := filepath.Join(n.Dir, m[1])
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := mkdirHost(t, m[0]); err != nil {
			return err
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", src, m[0])
	}
	// Shared inside the node, as systemd makes a real host's mounts: a
	// mount made in the node later (a pod's netns under /var/run/netns)
	// reaches the containers that mount its directory with HostToContainer
	// propagation (ratchetd's DaemonSet). The node stays a slave of the
	// host: nothing reaches the host.
	script.WriteString("mount --make-rshared /\n")
	fmt.Fprintf(&script, "hostname %s\necho ready\nexec sleep 2147483647\n", n.Name)
	p, err := c.startProc(n.Name+"-holder", "nsenter", "--net="+n.NS.Path(),
		"unshare", "--mount", "--uts", "--propagation", "slave", "sh", "-c", script.String())
	if err != nil {
		return err
	}
	n.holder = p
	err = waitFor(context.Background(), 10*time.Second, 20*time.Millisecond, "node holder", func() error {
		if err := p.alive(); err != nil {
			return err
		}
		if !strings.Contains(tail(p.logPath, 100), "ready") {
			return fmt.Errorf("no ready line yet")
		}
		return nil
	})
	if err != nil {
		return err
	}
	host, _ := os.Readlink("/proc/self/ns/mnt")
	n.mntNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.cmd.Process.Pid))
	if err == nil && n.mntNS == host {
		err = fmt.Errorf("holder shares the host's mount namespace")
	}
	if err != nil {
		return err
	}
	n.mntRef, err = os.Open(fmt.Sprintf("/proc/%d/ns/mnt", p.cmd.Process.Pid))
	if err != nil {
		return fmt.Errorf("hold the node's mount namespace: %w", err)
	}
	if ref, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", n.mntRef.Fd())); ref != n.mntNS {
		return fmt.Errorf("holder's mount namespace changed: %s, then %s", n.mntNS, ref)
	}
	return nil
}

// releaseMountNS lets the node's mount namespace go (with every mount
// made in it) once no process is in it; from then on Pids finds the
// node's processes by their cgroups only.
func (n *Node) releaseMountNS() {
	if n.mntRef != nil {
		n.mntRef.Close()
		n.mntRef = nil
	}
	n.mntNS = ""
}

// mkdirHost creates a host directory (and its missing parents) to serve as
// a mount point, and removes what it created when the test ends (only if
// empty: another run may be using it).
func mkdirHost(t testing.TB, dir string) error {
	var made []string
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	t.Cleanup(func() {
		for _, d := range made {
			_ = os.Remove(d)
		}
	})
	return nil
}

// dialIn returns a dialer whose sockets are created inside the netns at
// nsPath (a connected socket stays in the netns it was made in).
func dialIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
			var err error
			conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// httpIn is an HTTP client whose connections start inside the netns.
func httpIn(nsPath string, tr *http.Transport) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	tr.DialContext = dialIn(nsPath)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
