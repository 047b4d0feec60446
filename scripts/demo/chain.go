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

// topology is the first ratchet's router example: centosa – quagga-a
// (same host), quagga-a – quagga-b (across hosts, vxlan), quagga-b –
// centosb (same host).
const topology = `namespace: default
links:
  - a: {pod: centosa,  ifname: in1, ip: 192.0.2.1/30}
    b: {pod: quagga-a, ifname: in1, ip: 192.0.2.2/30}
  - a: {pod: quagga-a, ifname: in2, ip: 203.0.113.1/30}
    b: {pod: quagga-b, ifname: in1, ip: 203.0.113.2/30}
  - a: {pod: quagga-b, ifname: in2, ip: 192.0.2.5/30}
    b: {pod: centosb,  ifname: in1, ip: 192.0.2.6/30}
`

func (d *demo) etcdFlags() []string {
	return []string{"--etcd-endpoints", d.etcdURL, "--etcd-api", "v3", "--etcd-prefix", d.prefix}
}

func (d *demo) announce(ctx context.Context) error {
	path := filepath.Join(d.work, "topology.yaml")
	if err := os.WriteFile(path, []byte(topology), 0o600); err != nil {
		return err
	}
	fmt.Print(indent(topology))
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
	cmds := [][]string{
		{"ip", "netns", "exec", ns("quagga-a"), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", ns("quagga-b"), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "-n", ns("centosa"), "route", "add", "192.0.2.4/30", "via", "192.0.2.2"},
		{"ip", "-n", ns("centosa"), "route", "add", "203.0.113.0/30", "via", "192.0.2.2"},
		{"ip", "-n", ns("quagga-a"), "route", "add", "192.0.2.4/30", "via", "203.0.113.2"},
		{"ip", "-n", ns("quagga-b"), "route", "add", "192.0.2.0/30", "via", "203.0.113.1"},
		{"ip", "-n", ns("centosb"), "route", "add", "192.0.2.0/30", "via", "192.0.2.5"},
		{"ip", "-n", ns("centosb"), "route", "add", "203.0.113.0/30", "via", "192.0.2.5"},
	}
	for _, c := range cmds {
		if _, err := sh(ctx, nil, c[0], c[1:]...); err != nil {
			return err
		}
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
	kvs, _, err := kv.List(ctx, d.prefix)
	if err != nil {
		return err
	}
	left := 0
	for _, r := range kvs {
		// The hosts' agents announce themselves until they exit.
		if !strings.Contains(r.Key, "/announce/") && !strings.Contains(r.Key, "/agents/") {
			left++
		}
	}
	fmt.Printf("    records left under %s besides the announcements and agents: %d\n", d.prefix, left)
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
