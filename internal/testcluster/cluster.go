// Package testcluster is the multi-host test fixture of ratchet's end-to-end
// tests: an embedded etcd, simulated hosts (netns with a bridge master
// delegate, an underlay on a shared switch and etcd forwarded in), pods as
// netns or Docker containers, and the leftover checks every test ends with.
package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// Cluster is an etcd and simulated hosts: each host is a netns with its own
// bridge master delegate, an underlay address on a shared switch, and
// ratchet's etcd endpoint forwarded into it.
type Cluster struct {
	t testing.TB
	// Etcd is the embedded etcd; API and Prefix are what the netconfs use.
	Etcd   *testenv.Etcd
	API    string
	Prefix string
	// CNI is the client with the reference plugins and ratchet.
	CNI *testenv.CNI
	// KV and Keys give the test direct access to ratchet's records.
	KV    store.Store
	Keys  store.Keys
	Hosts []*Host
	sw    *testenv.NS
	swBr  string
	// Metadata is the netconf's "metadata" (default ["etcd"]).
	Metadata []string
	// DockerHost is the netconf's docker.host when Metadata uses docker.
	DockerHost string
	// PairTimeout is the netconf's pairTimeout (default 30s).
	PairTimeout string
}

// Host is one simulated node.
type Host struct {
	c *Cluster
	// Name is host.name; Addr the underlay (host.address) on interface ul0.
	Name string
	NS   *testenv.NS
	Addr string
	// EtcdURL is etcd as seen from inside the host; Fwd counts connections.
	EtcdURL string
	Fwd     *testenv.Forwarder
	// Dir holds the host's cniDir (Dir/cni), leases (Dir/ipam) and log.
	Dir string
	// AgentDir holds the agent's socket, start lock and netconf.
	AgentDir string
	Bridge   string
	Subnet   string
}

func New(t testing.TB, api string, nHosts int) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	e := testenv.StartEtcd(t)
	c := newBase(t, api, []string{e.URL})
	c.Etcd = e
	for i := range nHosts {
		c.AddHost(i)
	}
	return c
}

// newBase is a cluster without hosts: a prefix, a client and a store on the
// etcd at endpoints, and the switch the hosts' underlays join.
func newBase(t testing.TB, api string, endpoints []string) *Cluster {
	t.Helper()
	c := &Cluster{
		t: t, API: api, Prefix: "/" + testenv.UniqueName("rt"),
		CNI: testenv.NewCNI(t), Metadata: []string{"etcd"}, PairTimeout: "30s",
	}
	c.Keys = store.Keys{Prefix: c.Prefix}
	kv, err := store.New(store.Config{Endpoints: endpoints, API: api, Prefix: c.Prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	c.KV = kv
	c.sw = testenv.NewNS(t)
	c.swBr = "sw0"
	c.sw.MustExec(t, "ip", "link", "add", c.swBr, "type", "bridge")
	c.sw.MustExec(t, "ip", "link", "set", c.swBr, "up")
	return c
}

// AddHost adds simulated host i: its netns, underlay 198.51.100.(i+1) on
// the switch, and etcd forwarded into it.
func (c *Cluster) AddHost(i int) *Host {
	t := c.t
	h := &Host{
		c: c, Name: fmt.Sprintf("node%d-%s", i, testenv.UniqueName("")), NS: testenv.NewNS(t),
		Addr: fmt.Sprintf("198.51.100.%d", i+1), Dir: t.TempDir(), AgentDir: agentDir(t),
		Bridge: testenv.UniqueName("rb"), Subnet: fmt.Sprintf("10.%d.0.0/24", 100+i),
	}
	hostEnd, swEnd := testenv.UniqueName("ul"), testenv.UniqueName("sw")
	mustRun(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", swEnd)
	mustRun(t, "ip", "link", "set", hostEnd, "netns", h.NS.Name, "name", "ul0")
	mustRun(t, "ip", "link", "set", swEnd, "netns", c.sw.Name)
	c.sw.MustExec(t, "ip", "link", "set", swEnd, "master", c.swBr, "up")
	h.NS.MustExec(t, "ip", "addr", "add", h.Addr+"/24", "dev", "ul0")
	h.NS.MustExec(t, "ip", "link", "set", "ul0", "up")
	h.Fwd = h.NS.Forward(t, strings.TrimPrefix(c.Etcd.URL, "http://"))
	h.EtcdURL = "http://" + h.Fwd.Addr
	t.Cleanup(func() { h.KillAgent(syscall.SIGKILL) })
	c.Hosts = append(c.Hosts, h)
	return h
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// Netconf is the host's ratchet netconf.
func (h *Host) Netconf(mutate func(map[string]any)) []byte {
	c := h.c
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "ratchet-test", "type": "ratchet",
		"delegates": []any{map[string]any{
			"type": "bridge", "bridge": h.Bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "subnet": h.Subnet, "dataDir": filepath.Join(h.Dir, "ipam")},
		}},
		"etcd":        map[string]any{"endpoints": []string{h.EtcdURL}, "api": c.API, "prefix": c.Prefix, "timeout": "2s"},
		"metadata":    c.Metadata,
		"docker":      map[string]any{"host": c.DockerHost},
		"host":        map[string]any{"name": h.Name, "address": h.Addr, "interface": "ul0"},
		"cniDir":      filepath.Join(h.Dir, "cni"),
		"agent":       map[string]any{"socket": h.Socket()},
		"logFile":     filepath.Join(h.Dir, "ratchet.log"),
		"logLevel":    "debug",
		"pairTimeout": c.PairTimeout,
	}
	if c.DockerHost == "" {
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

// Pod is a pod sandbox on a simulated host.
type Pod struct {
	H    *Host
	Name string
	// Netns is the pod's netns path; RT and Conf what the client runs with.
	Netns string
	RT    *libcni.RuntimeConf
	Conf  *libcni.NetworkConfig
	// exec runs a command in the pod's netns.
	exec func(args ...string) (string, error)
}

// NewPod makes a pod netns on h, identified to ratchet by K8S_POD_NAME.
func (h *Host) NewPod(name string) *Pod {
	n := testenv.NewNS(h.c.t)
	rt := testenv.Runtime(testenv.UniqueName("c"), n.Path(), "eth0", [2]string{"IgnoreUnknown", "1"},
		[2]string{"K8S_POD_NAMESPACE", "default"}, [2]string{"K8S_POD_NAME", name})
	return &Pod{H: h, Name: name, Netns: n.Path(), RT: rt, Conf: h.c.CNI.Conf(h.c.t, h.Netconf(nil)), exec: n.Exec}
}

// ContainerPod is a Docker container on h, identified by its container ID.
func (h *Host) ContainerPod(name, id string, pid int) *Pod {
	netns := fmt.Sprintf("/proc/%d/ns/net", pid)
	rt := testenv.Runtime(id, netns, "eth0")
	run := func(args ...string) (string, error) {
		out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "-n"}, args...)...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("in container %s: %v: %w: %s", name, args, err, out)
		}
		return string(out), nil
	}
	return &Pod{H: h, Name: name, Netns: netns, RT: rt, Conf: h.c.CNI.Conf(h.c.t, h.Netconf(nil)), exec: run}
}

// MustExec runs a command in the pod's netns, failing the test on error.
func (p *Pod) MustExec(args ...string) string {
	p.H.c.t.Helper()
	out, err := p.exec(args...)
	if err != nil {
		p.H.c.t.Fatal(err)
	}
	return out
}

// Exec runs a command in the pod's netns and returns its output.
func (p *Pod) Exec(args ...string) (string, error) { return p.exec(args...) }

// PingStats pings addr count times from the pod, every interval seconds,
// and returns ping's summary: no reply, or no route at all (the interface
// is down), is a result with nothing received, not an error.
func (p *Pod) PingStats(addr string, count int, interval string) testenv.PingResult {
	out, _ := p.exec("ping", "-c", fmt.Sprint(count), "-i", interval, "-W", "1", addr)
	r, err := testenv.ParsePing(out)
	if err != nil {
		return testenv.PingResult{Sent: count, Out: out}
	}
	return r
}

// EndParked reports whether the pod still has interface ifname, without
// carrier: the end a link keeps while its peer pod is away.
func (p *Pod) EndParked(ifname string) bool {
	out, err := p.exec("ip", "-o", "link", "show", "dev", ifname)
	return err == nil && strings.Contains(out, ifname) && !strings.Contains(out, "LOWER_UP")
}

// Ping pings addr from the pod.
func (p *Pod) Ping(addr string) error {
	_, err := p.exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "-w", "3", addr)
	return err
}

// Links lists the pod's links but lo.
func (p *Pod) Links() []string {
	var names []string
	for _, l := range testenv.ParseIPLinks(p.MustExec("ip", "-o", "link", "show")) {
		names = append(names, l.Name)
	}
	return names
}

// InHost runs fn with the calling thread in the pod's host netns.
func (p *Pod) InHost(fn func() error) error {
	return p.H.NS.Do(func(ns.NetNS) error { return fn() })
}

// Add runs ADD for the pod through the CNI client, on its host.
func (p *Pod) Add() error {
	return p.InHost(func() error {
		_, err := p.H.c.CNI.Add(context.Background(), p.Conf, p.RT)
		return err
	})
}

// Del runs DEL for the pod.
func (p *Pod) Del() error {
	return p.InHost(func() error { return p.H.c.CNI.Del(context.Background(), p.Conf, p.RT) })
}

// Check runs CHECK for the pod.
func (p *Pod) Check() error {
	return p.InHost(func() error { return p.H.c.CNI.Check(context.Background(), p.Conf, p.RT) })
}

// MustAdd runs ADD and fails the test (with the host's log) on error.
func (p *Pod) MustAdd() {
	p.H.c.t.Helper()
	if err := p.Add(); err != nil {
		p.H.c.t.Fatalf("ADD %s: %v\n%s", p.Name, err, p.H.LogTail())
	}
}

// MustDel runs DEL and fails the test (with the host's log) on error.
func (p *Pod) MustDel() {
	p.H.c.t.Helper()
	if err := p.Del(); err != nil {
		p.H.c.t.Fatalf("DEL %s: %v\n%s", p.Name, err, p.H.LogTail())
	}
}

// LogTail is the end of the host's ratchet log, for failure messages.
func (h *Host) LogTail() string {
	data, _ := os.ReadFile(filepath.Join(h.Dir, "ratchet.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// Announce writes a pod's metadata where announcer would.
func (c *Cluster) Announce(p *metadata.Pod) {
	c.t.Helper()
	if p.Namespace == "" {
		p.Namespace = metadata.DefaultNamespace
	}
	if _, err := store.PutJSON(context.Background(), c.KV, c.Keys.Announce(p.Namespace, p.Name), metadata.Labels(p)); err != nil {
		c.t.Fatal(err)
	}
}

// Records lists every key under the prefix except announced records.
func (c *Cluster) Records() []string {
	c.t.Helper()
	kvs, _, err := c.KV.List(context.Background(), c.Prefix)
	if err != nil {
		c.t.Fatal(err)
	}
	var keys []string
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, c.Keys.Announce("", "")) && !strings.Contains(kv.Key, "/announce/") &&
			!strings.HasPrefix(kv.Key, c.Keys.Agents()+"/") {
			keys = append(keys, kv.Key)
		}
	}
	return keys
}

// Link returns the record of a link, failing the test when it is missing.
func (c *Cluster) Link(podA, ifA, podB, ifB string) store.LinkRecord {
	c.t.Helper()
	rec, _, err := store.GetLink(context.Background(), c.KV, c.Keys, "default", store.LinkID(podA, ifA, podB, ifB))
	if err != nil {
		c.t.Fatalf("link %s.%s--%s.%s: %v", podA, ifA, podB, ifB, err)
	}
	return rec
}

// AssertNothingLeft checks records, leases and caches (the agents'
// registrations are no leftovers: they go with their agents).
func (c *Cluster) AssertNothingLeft() {
	c.t.Helper()
	if r := c.Records(); len(r) > 0 {
		c.t.Errorf("records left under %s: %v", c.Prefix, r)
	}
	for _, h := range c.Hosts {
		if l := testenv.Leases(c.t, filepath.Join(h.Dir, "ipam")); len(l) > 0 {
			c.t.Errorf("host %s: leases left: %v", h.Name, l)
		}
		var files []string
		_ = filepath.WalkDir(filepath.Join(h.Dir, "cni"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) > 0 {
			c.t.Errorf("host %s: cache files left: %v", h.Name, files)
		}
	}
}

// WaitFor polls cond for up to d (tests only; the product never polls).
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// HasLink reports whether the pod has interface ifname with address ip.
func (p *Pod) HasLink(ifname, ip string) bool {
	out, err := p.exec("ip", "-o", "addr", "show", "dev", ifname)
	return err == nil && strings.Contains(out, ip)
}
