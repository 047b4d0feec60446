package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// cluster is an etcd and simulated hosts: each host is a netns with its own
// bridge master delegate, an underlay address on a shared switch, and
// ratchet's etcd endpoint forwarded into it.
type cluster struct {
	t      *testing.T
	etcd   *testenv.Etcd
	api    string
	prefix string
	cni    *testenv.CNI
	kv     store.Store
	keys   store.Keys
	hosts  []*simHost
	sw     *testenv.NS
	swBr   string
	// metadata is the netconf's "metadata" (default ["etcd"]).
	metadata []string
	// dockerHost is the netconf's docker.host when metadata uses docker.
	dockerHost string
}

// simHost is one simulated node.
type simHost struct {
	c       *cluster
	name    string
	ns      *testenv.NS
	addr    string
	etcdURL string
	fwd     *testenv.Forwarder
	dir     string
	bridge  string
	subnet  string
}

func newCluster(t *testing.T, api string, nHosts int) *cluster {
	t.Helper()
	testenv.RequireRoot(t)
	c := &cluster{
		t: t, etcd: testenv.StartEtcd(t), api: api, prefix: "/" + testenv.UniqueName("rt"),
		cni: testenv.NewCNI(t), metadata: []string{"etcd"},
	}
	c.keys = store.Keys{Prefix: c.prefix}
	kv, err := store.New(store.Config{Endpoints: []string{c.etcd.URL}, API: api, Prefix: c.prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	c.kv = kv
	c.sw = testenv.NewNS(t)
	c.swBr = "sw0"
	c.sw.MustExec(t, "ip", "link", "add", c.swBr, "type", "bridge")
	c.sw.MustExec(t, "ip", "link", "set", c.swBr, "up")
	for i := range nHosts {
		c.addHost(i)
	}
	return c
}

func (c *cluster) addHost(i int) *simHost {
	t := c.t
	h := &simHost{
		c: c, name: fmt.Sprintf("node%d-%s", i, testenv.UniqueName("")), ns: testenv.NewNS(t),
		addr: fmt.Sprintf("198.51.100.%d", i+1), dir: t.TempDir(),
		bridge: testenv.UniqueName("rb"), subnet: fmt.Sprintf("10.%d.0.0/24", 100+i),
	}
	hostEnd, swEnd := testenv.UniqueName("ul"), testenv.UniqueName("sw")
	mustRun(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", swEnd)
	mustRun(t, "ip", "link", "set", hostEnd, "netns", h.ns.Name, "name", "ul0")
	mustRun(t, "ip", "link", "set", swEnd, "netns", c.sw.Name)
	c.sw.MustExec(t, "ip", "link", "set", swEnd, "master", c.swBr, "up")
	h.ns.MustExec(t, "ip", "addr", "add", h.addr+"/24", "dev", "ul0")
	h.ns.MustExec(t, "ip", "link", "set", "ul0", "up")
	h.fwd = h.ns.Forward(t, strings.TrimPrefix(c.etcd.URL, "http://"))
	h.etcdURL = "http://" + h.fwd.Addr
	c.hosts = append(c.hosts, h)
	return h
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// netconf is the host's ratchet netconf.
func (h *simHost) netconf(mutate func(map[string]any)) []byte {
	c := h.c
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "ratchet-test", "type": "ratchet",
		"delegates": []any{map[string]any{
			"type": "bridge", "bridge": h.bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "subnet": h.subnet, "dataDir": filepath.Join(h.dir, "ipam")},
		}},
		"etcd":        map[string]any{"endpoints": []string{h.etcdURL}, "api": c.api, "prefix": c.prefix, "timeout": "2s"},
		"metadata":    c.metadata,
		"docker":      map[string]any{"host": c.dockerHost},
		"host":        map[string]any{"name": h.name, "address": h.addr, "interface": "ul0"},
		"cniDir":      filepath.Join(h.dir, "cni"),
		"logFile":     filepath.Join(h.dir, "ratchet.log"),
		"logLevel":    "debug",
		"pairTimeout": "30s",
	}
	if c.dockerHost == "" {
		delete(conf, "docker")
	}
	if mutate != nil {
		mutate(conf)
	}
	b, err := json.Marshal(conf)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// pod is a pod sandbox on a simulated host.
type pod struct {
	h     *simHost
	name  string
	netns string
	rt    *libcni.RuntimeConf
	conf  *libcni.NetworkConfig
	// exec runs a command in the pod's netns.
	exec func(args ...string) (string, error)
}

// newPod makes a pod netns on h, identified to ratchet by K8S_POD_NAME.
func (h *simHost) newPod(name string) *pod {
	n := testenv.NewNS(h.c.t)
	rt := testenv.Runtime(testenv.UniqueName("c"), n.Path(), "eth0", [2]string{"IgnoreUnknown", "1"},
		[2]string{"K8S_POD_NAMESPACE", "default"}, [2]string{"K8S_POD_NAME", name})
	return &pod{h: h, name: name, netns: n.Path(), rt: rt, conf: h.c.cni.Conf(h.c.t, h.netconf(nil)), exec: n.Exec}
}

// containerPod is a Docker container on h, identified by its container ID.
func (h *simHost) containerPod(name, id string, pid int) *pod {
	netns := fmt.Sprintf("/proc/%d/ns/net", pid)
	rt := testenv.Runtime(id, netns, "eth0")
	run := func(args ...string) (string, error) {
		out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "-n"}, args...)...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("in container %s: %v: %w: %s", name, args, err, out)
		}
		return string(out), nil
	}
	return &pod{h: h, name: name, netns: netns, rt: rt, conf: h.c.cni.Conf(h.c.t, h.netconf(nil)), exec: run}
}

// mustExec runs a command in the pod's netns, failing the test on error.
func (p *pod) mustExec(args ...string) string {
	p.h.c.t.Helper()
	out, err := p.exec(args...)
	if err != nil {
		p.h.c.t.Fatal(err)
	}
	return out
}

// ping pings addr from the pod.
func (p *pod) ping(addr string) error {
	_, err := p.exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "-w", "3", addr)
	return err
}

// links lists the pod's links but lo.
func (p *pod) links() []string {
	var names []string
	for _, line := range strings.Split(p.mustExec("ip", "-o", "link", "show"), "\n") {
		if f := strings.SplitN(line, ": ", 3); len(f) >= 2 {
			if name, _, _ := strings.Cut(f[1], "@"); name != "lo" {
				names = append(names, name)
			}
		}
	}
	return names
}

func (p *pod) inHost(fn func() error) error {
	return p.h.ns.Do(func(ns.NetNS) error { return fn() })
}

func (p *pod) add() error {
	return p.inHost(func() error {
		_, err := p.h.c.cni.Add(context.Background(), p.conf, p.rt)
		return err
	})
}

func (p *pod) del() error {
	return p.inHost(func() error { return p.h.c.cni.Del(context.Background(), p.conf, p.rt) })
}

func (p *pod) check() error {
	return p.inHost(func() error { return p.h.c.cni.Check(context.Background(), p.conf, p.rt) })
}

func (p *pod) mustAdd() {
	p.h.c.t.Helper()
	if err := p.add(); err != nil {
		p.h.c.t.Fatalf("ADD %s: %v\n%s", p.name, err, p.h.logTail())
	}
}

func (p *pod) mustDel() {
	p.h.c.t.Helper()
	if err := p.del(); err != nil {
		p.h.c.t.Fatalf("DEL %s: %v\n%s", p.name, err, p.h.logTail())
	}
}

// logTail is the end of the host's ratchet log, for failure messages.
func (h *simHost) logTail() string {
	data, _ := os.ReadFile(filepath.Join(h.dir, "ratchet.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// announce writes a pod's metadata where announcer would.
func (c *cluster) announce(p *metadata.Pod) {
	c.t.Helper()
	if p.Namespace == "" {
		p.Namespace = metadata.DefaultNamespace
	}
	if _, err := store.PutJSON(context.Background(), c.kv, c.keys.Announce(p.Namespace, p.Name), metadata.Labels(p)); err != nil {
		c.t.Fatal(err)
	}
}

// records lists every key under the prefix except announced records.
func (c *cluster) records() []string {
	c.t.Helper()
	kvs, _, err := c.kv.List(context.Background(), c.prefix)
	if err != nil {
		c.t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, c.keys.Announce("", "")) && !strings.Contains(kv.Key, "/announce/") {
			keys = append(keys, kv.Key)
		}
	}
	return keys
}

// link returns the record of a link, failing the test when it is missing.
func (c *cluster) link(podA, ifA, podB, ifB string) store.LinkRecord {
	c.t.Helper()
	rec, _, err := store.GetLink(context.Background(), c.kv, c.keys, "default", store.LinkID(podA, ifA, podB, ifB))
	if err != nil {
		c.t.Fatalf("link %s.%s--%s.%s: %v", podA, ifA, podB, ifB, err)
	}
	return rec
}

// completers counts the completer processes of this cluster's hosts.
func (c *cluster) completers() int {
	n := 0
	for _, h := range c.hosts {
		out, _ := exec.Command("pgrep", "-f", "ratchet complete "+filepath.Join(h.dir, "cni")).Output()
		n += len(strings.Fields(string(out)))
	}
	return n
}

// assertNothingLeft checks records, completers, leases and caches.
func (c *cluster) assertNothingLeft() {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.completers() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := c.completers(); n > 0 {
		c.t.Errorf("%d completer processes left", n)
	}
	if r := c.records(); len(r) > 0 {
		c.t.Errorf("records left under %s: %v", c.prefix, r)
	}
	for _, h := range c.hosts {
		if l := testenv.Leases(c.t, filepath.Join(h.dir, "ipam")); len(l) > 0 {
			c.t.Errorf("host %s: leases left: %v", h.name, l)
		}
		var files []string
		_ = filepath.WalkDir(filepath.Join(h.dir, "cni"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) > 0 {
			c.t.Errorf("host %s: cache files left: %v", h.name, files)
		}
	}
}

// waitFor polls cond for up to d (tests only; the product never polls).
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// hasLink reports whether the pod has interface ifname with address ip.
func (p *pod) hasLink(ifname, ip string) bool {
	out, err := p.exec("ip", "-o", "addr", "show", "dev", ifname)
	return err == nil && strings.Contains(out, ip)
}
