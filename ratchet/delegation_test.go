package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestAddWiresMasterAndSecondDelegateAtEveryVersion(t *testing.T) {
	for _, v := range config.SupportedVersions {
		t.Run(v, func(t *testing.T) {
			f := newFixture(t)
			pod, conf, rt := f.attach(v, nil)

			res, err := f.add(conf, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			assertResultVersion(t, res, v, "10.77.0.")
			addrs := pod.MustExec(t, "ip", "-o", "-4", "addr", "show")
			for _, want := range []string{"eth0", "10.77.0.", "net1", "10.78.0."} {
				if !strings.Contains(addrs, want) {
					t.Errorf("pod addresses lack %q:\n%s", want, addrs)
				}
			}
			if atLeast(v, "0.4.0") {
				if err := f.check(conf, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := f.del(conf, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			f.assertClean(pod)
			if err := f.del(conf, rt); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
		})
	}
}

// assertResultVersion re-parses the printed result at its version and
// checks the master's address.
func assertResultVersion(t *testing.T, res types.Result, v, ipPrefix string) {
	t.Helper()
	if res.Version() != v {
		t.Fatalf("result version %s, want %s", res.Version(), v)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := version.NewResult(v, raw)
	if err != nil {
		t.Fatalf("result does not parse at %s: %v\n%s", v, err, raw)
	}
	var ips []string
	switch r := parsed.(type) {
	case *types100.Result:
		for _, ip := range r.IPs {
			ips = append(ips, ip.Address.String())
		}
	case *types040.Result:
		for _, ip := range r.IPs {
			ips = append(ips, ip.Address.String())
		}
	}
	if len(ips) != 1 || !strings.HasPrefix(ips[0], ipPrefix) {
		t.Fatalf("result IPs %v, want one master address in %s*", ips, ipPrefix)
	}
}

func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

func TestDelAfterNetnsDeletedSucceeds(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.mustAdd()
	if out, err := pod.Exec("true"); err != nil {
		t.Fatal(out, err)
	}
	deleteNS(t, pod)
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL after netns deletion: %v", err)
	}
	f.assertClean(nil)
}

func TestDelWithCorruptCacheReleasesDelegates(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.mustAdd()
	files := f.cacheFiles()
	if len(files) != 1 {
		t.Fatalf("want one cache file, have %v", files)
	}
	if err := os.WriteFile(filepath.Join(f.cniDir, files[0]), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL with corrupt cache: %v", err)
	}
	f.assertClean(pod)
}

func TestCacheIsPrivateAndNamesDelegates(t *testing.T) {
	f := newFixture(t)
	_, conf, rt := f.mustAdd()
	t.Cleanup(func() { _ = f.del(conf, rt) })
	path := filepath.Join(f.cniDir, rt.ContainerID+"-eth0.json")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{`"bridge"`, `"ptp"`, `"ifname":"net1"`, `"results"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("cache lacks %s: %s", want, data)
		}
	}
}

func TestSecondDelegateFailureRollsBackEverything(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", func(c map[string]any) {
		d := c["delegates"].([]any)[1].(map[string]any)
		d["ipam"].(map[string]any)["subnet"] = "10.78.0.0/33"
	})
	_, err := f.add(conf, rt)
	if err == nil {
		t.Fatal("ADD with a broken second delegate succeeded")
	}
	if !strings.Contains(err.Error(), "delegate 1 (ptp on net1)") {
		t.Errorf("error does not name the delegate: %v", err)
	}
	f.assertClean(pod)
}

func TestMissingDelegateBinaryFailsCleanly(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", func(c map[string]any) {
		c["delegates"].([]any)[1].(map[string]any)["type"] = "no-such-plugin"
	})
	_, err := f.add(conf, rt)
	if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("want an error naming no-such-plugin, got %v", err)
	}
	f.assertClean(pod)
}

func deleteNS(t *testing.T, n *testenv.NS) {
	t.Helper()
	if out, err := runCmd("ip", "netns", "del", n.Name); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
}

func TestDelegateAnsweringAnotherVersionIsConverted(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", func(c map[string]any) {
		c["delegates"].([]any)[0].(map[string]any)["cniVersion"] = "0.3.1"
	})
	res, err := f.add(conf, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	assertResultVersion(t, res, "1.0.0", "10.77.0.")
	if err := f.check(conf, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	f.assertClean(pod)
}

// pkgPortmap is the reference portmap plugin (a go.mod tool dependency).
const pkgPortmap = "github.com/containernetworking/plugins/plugins/meta/portmap"

// chainHostPort is the hostPort the chain tests map to the pod's port 80.
// The iptables rules portmap makes live in the fixture's host netns and go
// with it.
const chainHostPort = 18080

// withChains makes the fixture's master delegate a chain bridge + portmap
// and its second delegate a chain of ptp alone, and declares the
// capabilities at ratchet's top level, as a cluster netconf does (a runtime
// passes runtimeConfig only for declared capabilities).
func (f *fixture) withChains(c map[string]any) {
	testenv.BinDir(f.t, pkgPortmap)
	ds := c["delegates"].([]any)
	bridge, ptp := ds[0].(map[string]any), ds[1].(map[string]any)
	delete(bridge, "masterplugin")
	c["delegates"] = []any{
		map[string]any{"masterplugin": true, "plugins": []any{
			bridge,
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		}},
		map[string]any{"plugins": []any{ptp}},
	}
	c["capabilities"] = map[string]any{"portMappings": true, "bandwidth": true}
}

// portMappings sets the runtime's portMappings capability argument.
func portMappings(rt *libcni.RuntimeConf, protocol string) {
	rt.CapabilityArgs = map[string]any{"portMappings": []map[string]any{
		{"hostPort": chainHostPort, "containerPort": 80, "protocol": protocol},
	}}
}

// natRules lists the nat table of the fixture's host netns.
func (f *fixture) natRules() string {
	f.t.Helper()
	return f.host.MustExec(f.t, "iptables", "-w", "5", "-t", "nat", "-S")
}

// dnatTo returns the rule of portmap's per-container chain that sends
// chainHostPort to podIP:80, "" if there is none.
func dnatTo(rules, podIP string) string {
	for _, l := range strings.Split(rules, "\n") {
		if strings.HasPrefix(l, "-A CNI-DN-") && strings.Contains(l, fmt.Sprintf("--dport %d ", chainHostPort)) &&
			strings.Contains(l, "--to-destination "+podIP+":80") {
			return l
		}
	}
	return ""
}

// assertChainClean is assertClean for a netconf with chains: ratchet's
// cache dir may keep libcni's (empty) results dir of the chains; no
// portmap chain may remain, nor a veth in the host netns.
func (f *fixture) assertChainClean(pod *testenv.NS) {
	f.t.Helper()
	if l := testenv.Leases(f.t, f.dataDir); len(l) > 0 {
		f.t.Errorf("host-local leases left: %v", l)
	}
	err := filepath.WalkDir(f.cniDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			f.t.Errorf("cache file left: %s", path)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if pod != nil {
		if links := pod.Links(f.t); len(links) > 0 {
			f.t.Errorf("links left in pod netns: %v", links)
		}
	}
	if veths := f.host.MustExec(f.t, "ip", "-o", "link", "show", "type", "veth"); strings.TrimSpace(veths) != "" {
		f.t.Errorf("veths left in the host netns:\n%s", veths)
	}
	if rules := f.natRules(); strings.Contains(rules, "-N CNI-DN-") {
		f.t.Errorf("portmap chain left:\n%s", rules)
	}
}

// podIP is the master's address in an ADD Result.
func podIP(t *testing.T, res types.Result) string {
	t.Helper()
	r, err := types100.NewResultFromResult(res)
	if err != nil || len(r.IPs) != 1 {
		t.Fatalf("result %v: %v", res, err)
	}
	return r.IPs[0].Address.IP.String()
}

// serve listens on port 80 in the pod's netns and answers every
// connection with a greeting.
func serve(t *testing.T, pod *testenv.NS) {
	t.Helper()
	var l net.Listener
	if err := pod.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", ":80")
		return err
	}); err != nil {
		t.Fatalf("listen in the pod: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ratchet\n"))
			_ = c.Close()
		}
	}()
}

// dialHostPort connects from the host netns to the bridge's address on
// chainHostPort and reads the pod's greeting.
func (f *fixture) dialHostPort(gateway string) (string, error) {
	var got string
	err := f.inHost(func() error {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(gateway, strconv.Itoa(chainHostPort)), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

func TestDelegateChainBridgePortmapAsMaster(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", f.withChains)
	portMappings(rt, "tcp")

	res, err := f.add(conf, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	assertResultVersion(t, res, "1.0.0", "10.77.0.")
	ip := podIP(t, res)
	addrs := pod.MustExec(t, "ip", "-o", "-4", "addr", "show")
	for _, want := range []string{"eth0", ip + "/24", "net1", "10.78.0."} {
		if !strings.Contains(addrs, want) {
			t.Errorf("pod addresses lack %q:\n%s", want, addrs)
		}
	}
	rules := f.natRules()
	if dnatTo(rules, ip) == "" {
		t.Fatalf("no DNAT of hostPort %d to %s:80 after ADD (portmap got no prevResult or runtimeConfig):\n%s", chainHostPort, ip, rules)
	}
	if root, _ := runCmd("iptables", "-w", "5", "-t", "nat", "-S"); strings.Contains(root, rt.ContainerID) {
		t.Errorf("portmap wrote into the machine's netns:\n%s", root)
	}
	serve(t, pod)
	if got, err := f.dialHostPort("10.77.0.1"); err != nil || got != "ratchet\n" {
		t.Errorf("hostPort %d: got %q, %v; want the pod's greeting", chainHostPort, got, err)
	}

	cache, err := os.ReadFile(filepath.Join(f.cniDir, rt.ContainerID+"-eth0.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"plugins":["bridge","portmap"]`, `"plugins":["ptp"]`, `"ifname":"net1"`, `"portMappings"`} {
		if !strings.Contains(string(cache), want) {
			t.Errorf("cache lacks %s: %s", want, cache)
		}
	}

	if err := f.check(conf, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	// CHECK of the chain reaches portmap, with the chain's Result: a
	// DNAT rule removed behind its back fails it.
	chain := strings.Fields(dnatTo(rules, ip))[1]
	f.host.MustExec(t, "iptables", "-w", "5", "-t", "nat", "-F", chain)
	if err := f.check(conf, rt); err == nil || !strings.Contains(err.Error(), "portmap") {
		t.Errorf("CHECK with portmap's rule gone = %v, want portmap's failure", err)
	}

	if err := f.del(conf, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	f.assertChainClean(pod)
	if err := f.del(conf, rt); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
}

func TestDelegateChainSecondPluginFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", f.withChains)
	portMappings(rt, "bogus") // portmap's ADD fails at iptables; its DEL works
	_, err := f.add(conf, rt)
	if err == nil {
		t.Fatal("ADD with a failing portmap succeeded")
	}
	if !strings.Contains(err.Error(), "delegate 0 (bridge+portmap on eth0) ADD: portmap: ") {
		t.Errorf("error does not name the chain and its failing plugin: %v", err)
	}
	var te *types.Error
	if !errors.As(err, &te) || !strings.Contains(te.Msg, `unknown protocol "bogus"`) || strings.Contains(te.Msg, "rollback") {
		t.Errorf("error %v: want portmap's own CNI error, no rollback failure", err)
	}
	f.assertChainClean(pod)
}

func TestDelegateChainDelWithOnlyTheCache(t *testing.T) {
	f := newFixture(t)
	pod, conf, rt := f.attach("1.0.0", f.withChains)
	portMappings(rt, "tcp")
	res, err := f.add(conf, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if dnatTo(f.natRules(), podIP(t, res)) == "" {
		t.Fatal("no DNAT rule after ADD")
	}
	// The netconf changed since ADD (no chain, no capabilities) and the
	// runtime passes no runtimeConfig: DEL runs the chain as ADD ran it.
	_, newConf, _ := f.attach("1.0.0", func(c map[string]any) {
		c["delegates"] = []any{map[string]any{"type": "loopback"}}
	})
	rt.CapabilityArgs = nil
	if err := f.del(newConf, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	f.assertChainClean(pod)
}

// At cniVersion 1.1.0 STATUS and GC run through the plugins of the chains
// (bridge's STATUS asks host-local; the reference bridge, ptp and portmap
// have no GC of their own, so the valid attachments each plugin gets are
// checked by the delegation package's tests): GC deletes the stale pod's
// chains, its DNAT rule and leases go, the kept pod's stay.
func TestDelegateChainStatusAndGCAt110(t *testing.T) {
	f := newFixture(t)
	netconf := f.netconf("1.1.0", f.withChains)
	conf := f.cni.Conf(t, netconf)
	keep, drop := testenv.NewNS(t), testenv.NewNS(t)
	rtKeep := testenv.Runtime(testenv.UniqueName("keep"), keep.Path(), "eth0")
	rtDrop := testenv.Runtime(testenv.UniqueName("drop"), drop.Path(), "eth0")
	ips := map[*libcni.RuntimeConf]string{}
	for _, rt := range []*libcni.RuntimeConf{rtKeep, rtDrop} {
		portMappings(rt, "tcp")
		res, err := f.add(conf, rt)
		if err != nil {
			t.Fatalf("ADD %s: %v", rt.ContainerID, err)
		}
		ips[rt] = podIP(t, res)
	}
	list := f.cni.List(t, netconf)
	if err := f.inHost(func() error { return f.cni.Client.GetStatusNetworkList(context.Background(), list) }); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	args := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: rtKeep.ContainerID, IfName: "eth0"}}}
	if err := f.inHost(func() error { return f.cni.Client.GCNetworkList(context.Background(), list, args) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if l := testenv.Leases(t, f.dataDir); len(l) != 2 {
		t.Errorf("after GC want the kept pod's 2 leases, have %v", l)
	}
	rules := f.natRules()
	if dnatTo(rules, ips[rtKeep]) == "" || dnatTo(rules, ips[rtDrop]) != "" {
		t.Errorf("after GC want only the kept pod's DNAT rule (%s), have:\n%s", ips[rtKeep], rules)
	}
	if links := drop.Links(t); len(links) > 0 {
		t.Errorf("links left in the dropped pod: %v", links)
	}
	if err := f.del(conf, rtKeep); err != nil {
		t.Fatal(err)
	}
	f.assertChainClean(keep)
}
