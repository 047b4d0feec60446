package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// topologyFile is the first ratchet's router example, relative to the
// repository root (the tests announce the same file): centosa – quagga-a
// (same host), quagga-a – quagga-b (across hosts, vxlan), quagga-b –
// centosb (same host).
const topologyFile = "examples/router-chain.topology.yaml"

func (d *demo) etcdFlags() []string {
	return []string{"--etcd-endpoints", d.etcdURL, "--etcd-api", "v3", "--etcd-prefix", d.prefix}
}

func (d *demo) announce(ctx context.Context) error {
	path := filepath.Join(d.root, filepath.FromSlash(topologyFile))
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the router chain topology: %w", err)
	}
	fmt.Print(indent(string(data)))
	out, err := sh(ctx, nil, filepath.Join(d.bin, "announcer"), append(d.etcdFlags(), "--file", path)...)
	fmt.Print(indent(out))
	return err
}

func (d *demo) addPods(ctx context.Context) error {
	a, b := d.hosts[0], d.hosts[1]
	// quagga-a comes last: its ADD wires centosa's link (same host) and its
	// own vxlan end; quagga-b's agent then builds the other end.
	for _, p := range []*pod{{name: "centosa", host: a}, {name: "centosb", host: b}, {name: "quagga-b", host: b}, {name: "quagga-a", host: a}} {
		p.netns = fmt.Sprintf("rdemo-%s-%s", d.id, p.name)
		if _, err := sh(ctx, nil, "ip", "netns", "add", p.netns); err != nil {
			return err
		}
		d.pods = append(d.pods, p)
		t := time.Now()
		if _, err := d.cnitool(ctx, "add", p); err != nil {
			return err
		}
		p.added = true
		fmt.Printf("    ADD %-8s on %s: %s\n", p.name, p.host.name, time.Since(t).Round(time.Millisecond))
	}
	return d.waitWired(ctx, 3, 10*time.Second)
}

// cnitool runs the CNI client in the pod's host netns, naming the pod in
// CNI_ARGS as Kubernetes does.
func (d *demo) cnitool(ctx context.Context, op string, p *pod) (string, error) {
	env := []string{"CNI_PATH=" + d.cniBin, "NETCONFPATH=" + p.host.confDir,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + p.name}
	out, err := sh(ctx, env, "ip", "netns", "exec", p.host.netns, filepath.Join(d.cniBin, "cnitool"), op, "ratchet-demo", "/run/netns/"+p.netns)
	if err != nil {
		return out, fmt.Errorf("%w\n%s", err, d.logTail(p.host))
	}
	return out, nil
}

func (d *demo) logTail(h *host) string {
	data, _ := os.ReadFile(filepath.Join(h.confDir, "ratchet.log"))
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(data)
}

// waitWired waits until n links are wired (the cross-host link's first end
// is built by the first host's agent, right after the second ADD).
func (d *demo) waitWired(ctx context.Context, n int, max time.Duration) error {
	kv, err := d.store()
	if err != nil {
		return err
	}
	defer kv.Close()
	keys := store.Keys{Prefix: d.prefix}
	deadline := time.Now().Add(max)
	for {
		links, _, err := store.ListLinks(ctx, kv, keys, "default")
		if err != nil {
			return err
		}
		wired := 0
		for _, l := range links {
			if l.Value.State == store.LinkWired {
				wired++
			}
		}
		if wired == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d links wired after %s", wired, n, max)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *demo) store() (store.Store, error) {
	return store.New(store.Config{Endpoints: []string{d.etcdURL}, API: "v3", Prefix: d.prefix, Timeout: 2 * time.Second})
}

func (d *demo) status(ctx context.Context) error {
	out, err := sh(ctx, nil, filepath.Join(d.bin, "ratchetctl"), append(d.etcdFlags(), "status")...)
	fmt.Print(indent(out))
	return err
}

func (d *demo) topology(ctx context.Context) error {
	out, err := sh(ctx, nil, filepath.Join(d.bin, "ratchetctl"), append(d.etcdFlags(), "topology", "-o", "dot")...)
	if err != nil {
		return err
	}
	dot := filepath.Join(d.root, "demo-topology.dot")
	if err := os.WriteFile(dot, []byte(out), 0o644); err != nil {
		return err
	}
	fmt.Printf("    wrote %s\n", dot)
	if _, err := exec.LookPath("dot"); err == nil {
		svg := strings.TrimSuffix(dot, ".dot") + ".svg"
		if _, err := sh(ctx, nil, "dot", "-Tsvg", "-o", svg, dot); err != nil {
			return err
		}
		fmt.Printf("    rendered %s\n", svg)
	}
	return nil
}

func (d *demo) ping(ctx context.Context) error {
	ns := func(name string) string { return fmt.Sprintf("rdemo-%s-%s", d.id, name) }
	if err := d.routes(ctx); err != nil {
		return err
	}
	out, err := sh(ctx, nil, "ip", "netns", "exec", ns("centosa"), "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.6")
	fmt.Print(indent(out))
	if err != nil {
		return err
	}
	out, err = sh(ctx, nil, "ip", "netns", "exec", ns("centosa"), "ip", "route", "get", "192.0.2.6")
	fmt.Print(indent("centosa → centosb goes " + out))
	return err
}

// routes turns the routers on and gives each pod its static routes along
// the chain (what a routing daemon in the routers would learn). A link
// set down loses the routes through it, as on any router: routes puts
// them back.
func (d *demo) routes(ctx context.Context) error {
	ns := func(name string) string { return fmt.Sprintf("rdemo-%s-%s", d.id, name) }
	cmds := [][]string{
		{"ip", "netns", "exec", ns("quagga-a"), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", ns("quagga-b"), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "-n", ns("centosa"), "route", "replace", "192.0.2.4/30", "via", "192.0.2.2"},
		{"ip", "-n", ns("centosa"), "route", "replace", "203.0.113.0/30", "via", "192.0.2.2"},
		{"ip", "-n", ns("quagga-a"), "route", "replace", "192.0.2.4/30", "via", "203.0.113.2"},
		{"ip", "-n", ns("quagga-b"), "route", "replace", "192.0.2.0/30", "via", "203.0.113.1"},
		{"ip", "-n", ns("centosb"), "route", "replace", "192.0.2.0/30", "via", "192.0.2.5"},
		{"ip", "-n", ns("centosb"), "route", "replace", "203.0.113.0/30", "via", "192.0.2.5"},
	}
	for _, c := range cmds {
		if _, err := sh(ctx, nil, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// recordsLeft counts the records under the prefix but the announcements.
func (d *demo) recordsLeft(ctx context.Context, kv store.Store) (int, error) {
	kvs, _, err := kv.List(ctx, d.prefix)
	if err != nil {
		return 0, err
	}
	left := 0
	for _, r := range kvs {
		if !strings.Contains(r.Key, "/announce/") {
			left++
		}
	}
	return left, nil
}

func (d *demo) delPods(ctx context.Context) error {
	for i := len(d.pods) - 1; i >= 0; i-- {
		p := d.pods[i]
		if _, err := d.cnitool(ctx, "del", p); err != nil {
			return err
		}
		p.added = false
		fmt.Printf("    DEL %s\n", p.name)
	}
	kv, err := d.store()
	if err != nil {
		return err
	}
	defer kv.Close()
	// The hosts' agents, started on demand, exit once their host has no
	// ratchet pods (after a few quiet seconds) and take their registration
	// (<prefix>/agents/<host>) with them.
	var left int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if left, err = d.recordsLeft(ctx, kv); err != nil || left == 0 && len(d.agents()) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("    records left under %s besides the announcements: %d (agents exited: %v)\n", d.prefix, left, len(d.agents()) == 0)
	if left != 0 {
		return fmt.Errorf("%d records left", left)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
