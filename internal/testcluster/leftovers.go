package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// tempLinkPrefix starts the temporary names the wiring package gives links
// until they are configured; none may outlive a CNI command.
const tempLinkPrefix = "rtw"

// AssertNoLeftovers is AssertNothingLeft (records, leases,
// caches) plus the links, for the end of a test after the final DEL: each
// host netns holds only ul0 and the host's bridge, each given pod's netns
// (if it still exists) holds nothing but lo, and no netns of the cluster
// holds a temporary link (rtw…).
func (c *Cluster) AssertNoLeftovers(pods ...*Pod) {
	c.t.Helper()
	c.AssertNothingLeft()
	c.AssertNoStrayLinks()
	for _, p := range pods {
		links, ok := p.linksIfAlive()
		if ok && len(links) > 0 {
			c.t.Errorf("pod %s (%s): links left: %v", p.Name, p.Netns, names(links))
		}
	}
}

// AssertNoStrayLinks checks the links while the given pods still live (are
// ADDed and not DELed): each host netns holds only ul0, the host's bridge
// and at most one bridge port per live pod of the host, and no netns of the
// cluster or live pod holds a temporary link (rtw…).
func (c *Cluster) AssertNoStrayLinks(live ...*Pod) {
	c.t.Helper()
	ports := map[*Host]int{}
	for _, p := range live {
		ports[p.H]++
	}
	for _, h := range c.Hosts {
		var stray, bridgePorts []string
		for _, l := range nsLinks(c.t, h.NS) {
			switch {
			case l.name == "ul0" || l.name == h.Bridge:
			case l.master == h.Bridge && !strings.HasPrefix(l.name, tempLinkPrefix):
				bridgePorts = append(bridgePorts, l.name)
			default:
				stray = append(stray, l.name)
			}
		}
		if len(stray) > 0 {
			c.t.Errorf("host %s: stray links %v (only ul0, %s and its ports may be there)", h.Name, stray, h.Bridge)
		}
		if len(bridgePorts) > ports[h] {
			c.t.Errorf("host %s: %d ports on %s %v, but only %d live pods", h.Name, len(bridgePorts), h.Bridge, bridgePorts, ports[h])
		}
	}
	for _, l := range nsLinks(c.t, c.sw) {
		if strings.HasPrefix(l.name, tempLinkPrefix) {
			c.t.Errorf("switch netns: temporary link %s", l.name)
		}
	}
	for _, name := range testenv.HostLinks(c.t) {
		if strings.HasPrefix(name, tempLinkPrefix) {
			c.t.Errorf("test process netns: temporary link %s", name)
		}
	}
	for _, p := range live {
		links, _ := p.linksIfAlive()
		for _, l := range links {
			if strings.HasPrefix(l.name, tempLinkPrefix) {
				c.t.Errorf("pod %s: temporary link %s", p.Name, l.name)
			}
		}
	}
}

// Reconfigure replaces the pod's netconf with its host's, changed by mutate
// (for a broken delegate, another etcd timeout, more endpoints).
func (p *Pod) Reconfigure(mutate func(map[string]any)) {
	p.H.c.t.Helper()
	p.Conf = p.H.c.CNI.Conf(p.H.c.t, p.H.Netconf(mutate))
}

// NewKillablePod is NewPod whose netns the test process does not hold open,
// so that KillSandbox destroys it (with its links) as a dead sandbox would.
func (h *Host) NewKillablePod(name string) *Pod {
	t := h.c.t
	t.Helper()
	nsName := testenv.UniqueName("rt-")
	mustRun(t, "ip", "netns", "add", nsName)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
	mustRun(t, "ip", "-n", nsName, "link", "set", "lo", "up")
	path := filepath.Join(testenv.NetnsRunDir, nsName)
	rt := testenv.Runtime(testenv.UniqueName("c"), path, "eth0", [2]string{"IgnoreUnknown", "1"},
		[2]string{"K8S_POD_NAMESPACE", "default"}, [2]string{"K8S_POD_NAME", name})
	run := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", nsName}, args...)...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("in netns %s: %s: %w: %s", nsName, strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	return &Pod{H: h, Name: name, Netns: path, RT: rt, Conf: h.c.CNI.Conf(t, h.Netconf(nil)), exec: run}
}

// KillSandbox deletes the pod's netns without any CNI command. For a pod of
// NewKillablePod the netns is destroyed with its links, and KillSandbox
// waits (up to 5s) until the kernel has removed their peers in the host
// netns; for a pod of NewPod only its name goes (the test still holds it).
func (p *Pod) KillSandbox() {
	t := p.H.c.t
	t.Helper()
	out, err := p.exec("ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, l := range testenv.ParseIPLinks(out) {
		if idx, ok := strings.CutPrefix(l.Peer, "if"); ok {
			peers = append(peers, idx)
		}
	}
	mustRun(t, "ip", "netns", "del", filepath.Base(p.Netns))
	gone := func() bool {
		out, err := p.H.NS.Exec("ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, idx := range peers {
			if strings.HasPrefix(out, idx+": ") || strings.Contains(out, "\n"+idx+": ") {
				return false
			}
		}
		return true
	}
	if !WaitFor(5*time.Second, gone) {
		t.Logf("links of the killed sandbox %s still have peers in host %s", p.Name, p.H.Name)
	}
}

// RawEnv is the environment of a CNI command for the pod, as a runtime
// sets it, for running the ratchet binary without libcni; Stdin is its
// netconf.
func (p *Pod) RawEnv(command string) []string {
	var args []string
	for _, kv := range p.RT.Args {
		args = append(args, kv[0]+"="+kv[1])
	}
	return append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+p.RT.ContainerID,
		"CNI_NETNS="+p.Netns, "CNI_IFNAME="+p.RT.IfName, "CNI_ARGS="+strings.Join(args, ";"),
		"CNI_PATH="+p.H.c.CNI.BinDir)
}

// Stdin is the netconf the runtime hands the plugin for the pod.
func (p *Pod) Stdin() []byte { return p.Conf.Bytes }

// CacheFiles lists the files ratchet keeps for the pod's container under
// its host's cniDir (delegation cache, pairing state).
func (p *Pod) CacheFiles() []string {
	var files []string
	_ = filepath.WalkDir(filepath.Join(p.H.Dir, "cni"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), p.RT.ContainerID) {
			files = append(files, path)
		}
		return nil
	})
	return files
}

// GC runs the CNI GC of the host (netconf at cniVersion 1.1.0) with the
// given pods as the valid attachments.
func (h *Host) GC(valid ...*Pod) error {
	t := h.c.t
	t.Helper()
	list := h.c.CNI.List(t, h.Netconf(func(m map[string]any) { m["cniVersion"] = "1.1.0" }))
	args := &libcni.GCArgs{}
	for _, p := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: p.RT.ContainerID, IfName: p.RT.IfName})
	}
	return h.NS.Do(func(ns.NetNS) error { return h.c.CNI.Client.GCNetworkList(context.Background(), list, args) })
}

// linkInfo is one link of `ip -o link show`.
type linkInfo struct{ name, master string }

func names(links []linkInfo) []string {
	out := make([]string, len(links))
	for i, l := range links {
		out[i] = l.name
	}
	return out
}

// nsLinks lists the links of a netns but lo.
func nsLinks(t testing.TB, n *testenv.NS) []linkInfo {
	out, err := n.Exec("ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	return parseLinks(out)
}

// linksIfAlive lists the pod's links but lo; ok is false when its netns is
// gone.
func (p *Pod) linksIfAlive() (links []linkInfo, ok bool) {
	if _, err := os.Stat(p.Netns); errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	out, err := p.exec("ip", "-o", "link", "show")
	if err != nil {
		if _, serr := os.Stat(p.Netns); errors.Is(serr, os.ErrNotExist) {
			return nil, false
		}
		p.H.c.t.Fatal(err)
	}
	return parseLinks(out), true
}

// parseLinks reads `ip -o link show`: "5: name@peer: <…> mtu 1500 … master br0 state UP …".
func parseLinks(out string) []linkInfo {
	var links []linkInfo
	for _, il := range testenv.ParseIPLinks(out) {
		l := linkInfo{name: il.Name}
		for i := 0; i+1 < len(il.Words); i++ {
			if il.Words[i] == "master" {
				l.master = il.Words[i+1]
			}
		}
		links = append(links, l)
	}
	return links
}
