package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/ratchet-cni/ratchet/internal/etcdembed"
	"github.com/ratchet-cni/ratchet/internal/nsproxy"
)

// host is a simulated node: a netns with an underlay address.
type host struct {
	name, netns, addr, subnet string
	proxy                     *nsproxy.Proxy
	confDir                   string
}

// pod is a pod sandbox: a netns on a host.
type pod struct {
	name, netns string
	host        *host
	added       bool
}

type demo struct {
	root, work, bin, cniBin, prefix, etcdURL, id string
	etcd                                         *embed.Etcd
	hosts                                        []*host
	pods                                         []*pod
	bridge                                       string
}

func newDemo() (*demo, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run as root (it creates network namespaces)")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	work, err := os.MkdirTemp("", "ratchet-demo-")
	if err != nil {
		return nil, err
	}
	root := repoRoot()
	return &demo{root: root, work: work, bin: filepath.Join(root, "bin"), cniBin: filepath.Join(work, "cni-bin"),
		prefix: "/ratchet-demo-" + id, id: id, bridge: "rdemo" + id}, nil
}

// sh runs a command, echoing it, and returns its output.
func sh(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (d *demo) buildPlugins(ctx context.Context) error {
	pkgs := []string{"github.com/containernetworking/plugins/plugins/main/bridge",
		"github.com/containernetworking/plugins/plugins/ipam/host-local",
		"github.com/containernetworking/plugins/plugins/main/loopback",
		"github.com/containernetworking/cni/cnitool"}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", d.cniBin + "/"}, pkgs...)...)
	cmd.Dir = d.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	for _, b := range []string{"ratchet", "announcer", "ratchetctl"} {
		if _, err := os.Stat(filepath.Join(d.bin, b)); err != nil {
			return fmt.Errorf("bin/%s missing: run make build first: %w", b, err)
		}
	}
	if err := os.Symlink(filepath.Join(d.bin, "ratchet"), filepath.Join(d.cniBin, "ratchet")); err != nil {
		return err
	}
	fmt.Printf("    plugins in %s: bridge host-local loopback cnitool + ratchet\n", d.cniBin)
	return nil
}

func (d *demo) startEtcd(context.Context) error {
	if u := os.Getenv("RATCHET_ETCD"); u != "" {
		d.etcdURL = u
		fmt.Printf("    using RATCHET_ETCD=%s (prefix %s)\n", u, d.prefix)
		return nil
	}
	client, peer, err := freeAddr(), freeAddr(), error(nil)
	d.etcd, err = etcdembed.Start("ratchet-demo", filepath.Join(d.work, "etcd"), "http://"+client, "http://"+peer)
	if err != nil {
		return err
	}
	d.etcdURL = "http://" + client
	fmt.Printf("    embedded etcd at %s (v2 and v3 APIs; set RATCHET_ETCD to use another)\n", d.etcdURL)
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

func (d *demo) makeHosts(ctx context.Context) error {
	target := strings.TrimPrefix(strings.TrimPrefix(d.etcdURL, "http://"), "https://")
	for i, name := range []string{"host-a", "host-b"} {
		h := &host{name: name, netns: fmt.Sprintf("rdemo-%s-%s", d.id, name), addr: fmt.Sprintf("198.51.100.%d", i+1),
			subnet: fmt.Sprintf("10.%d.0.0/24", 10+i), confDir: filepath.Join(d.work, name)}
		if _, err := sh(ctx, nil, "ip", "netns", "add", h.netns); err != nil {
			return err
		}
		d.hosts = append(d.hosts, h)
		if _, err := sh(ctx, nil, "ip", "-n", h.netns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		p, err := nsproxy.Start("/run/netns/"+h.netns, target)
		if err != nil {
			return err
		}
		h.proxy = p
	}
	a, b := d.hosts[0], d.hosts[1]
	cmds := [][]string{
		{"ip", "link", "add", "rdA" + d.id, "netns", a.netns, "type", "veth", "peer", "name", "rdB" + d.id, "netns", b.netns},
		{"ip", "-n", a.netns, "link", "set", "rdA" + d.id, "name", "ul0"},
		{"ip", "-n", b.netns, "link", "set", "rdB" + d.id, "name", "ul0"},
	}
	for _, h := range d.hosts {
		cmds = append(cmds, []string{"ip", "-n", h.netns, "addr", "add", h.addr + "/24", "dev", "ul0"},
			[]string{"ip", "-n", h.netns, "link", "set", "ul0", "up"})
	}
	for _, c := range cmds {
		if _, err := sh(ctx, nil, c[0], c[1:]...); err != nil {
			return err
		}
	}
	for _, h := range d.hosts {
		if err := d.writeNetconf(h); err != nil {
			return err
		}
		fmt.Printf("    %s: netns %s, underlay %s on ul0, etcd forwarded to %s\n", h.name, h.netns, h.addr, h.proxy.Addr)
	}
	return nil
}

// writeNetconf writes the host's ratchet netconf where cnitool finds it.
func (d *demo) writeNetconf(h *host) error {
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "ratchet-demo", "type": "ratchet",
		"delegates": []any{map[string]any{"type": "bridge", "masterplugin": true, "bridge": d.bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "subnet": h.subnet, "dataDir": filepath.Join(h.confDir, "ipam")}}},
		"etcd":     map[string]any{"endpoints": []string{"http://" + h.proxy.Addr}, "api": "v3", "prefix": d.prefix},
		"metadata": []string{"etcd"},
		"host":     map[string]any{"name": h.name, "address": h.addr, "interface": "ul0"},
		"cniDir":   filepath.Join(h.confDir, "cni"), "logFile": filepath.Join(h.confDir, "ratchet.log"),
		"agent":    map[string]any{"socket": filepath.Join(h.confDir, "ratchetd.sock")},
		"logLevel": "info", "pairTimeout": "30s",
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(h.confDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.confDir, "10-ratchet.conf"), data, 0o600)
}
