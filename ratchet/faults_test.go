package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// cniCode returns the CNI error code of a failed command.
func cniCode(t *testing.T, err error) uint {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error is not a CNI error: %v", err)
	}
	return te.Code
}

func TestBadMetadataIsRefusedNamingTheKey(t *testing.T) {
	c := newCluster(t, "v3", 1)
	base := map[string]string{
		"ratchet": "true", "ratchet.pod_name": "bad-pod", "ratchet.primary": "true",
		"ratchet.local_ifname": "in1", "ratchet.local_ip": "192.0.2.1/24",
		"ratchet.pair_name": "peer", "ratchet.pair_ifname": "in2", "ratchet.pair_ip": "192.0.2.2/24",
	}
	cases := []struct{ name, key, value, wantKey string }{
		{"invalid IP", "ratchet.local_ip", "300.1.1.1", "ratchet.local_ip"},
		{"16-character ifname", "ratchet.local_ifname", "abcdefghijklmnop", "ratchet.local_ifname"},
		{"two links on one name", "ratchet.links", `[{"peer":"other","ifname":"in1","peer_ifname":"x"}]`, "ratchet.links[0].ifname"},
		{"link on the master's name", "ratchet.local_ifname", "eth0", "ratchet.local_ifname"},
		{"links not JSON", "ratchet.links", `[{"peer":`, "ratchet.links"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			labels := map[string]string{}
			for k, v := range base {
				labels[k] = v
			}
			labels[tc.key] = tc.value
			if _, err := store.PutJSON(context.Background(), c.kv, c.keys.Announce("default", "bad-pod"), labels); err != nil {
				t.Fatal(err)
			}
			p := c.hosts[0].newPod("bad-pod")
			err := p.add()
			if err == nil {
				p.mustDel()
				t.Fatal("ADD with bad metadata succeeded")
			}
			if code := cniCode(t, err); code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("error (code %d) %v, want code 7 naming %s", code, err, tc.wantKey)
			}
			if links := p.links(); len(links) > 0 {
				t.Errorf("pod netns has links %v", links)
			}
			c.assertNothingLeft()
		})
	}
}

func TestEtcdDownAtAddIsTryAgainLaterAndLeavesNothing(t *testing.T) {
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			c := newCluster(t, api, 1)
			mp, _ := seedPair()
			c.announce(mp)
			p := c.hosts[0].newPod("primary-pod")
			c.etcd.Stop()
			err := p.add()
			if err == nil {
				t.Fatal("ADD with etcd down succeeded")
			}
			if code := cniCode(t, err); code != types.ErrTryAgainLater {
				t.Errorf("code %d (%v), want 11", code, err)
			}
			if links := p.links(); len(links) > 0 {
				t.Errorf("pod netns has links %v", links)
			}
			c.etcd.Restart()
			c.assertNothingLeft()
		})
	}
}

func TestEtcdDownAtDelStillReleasesDelegatesAndGCFinishes(t *testing.T) {
	c := newCluster(t, "v3", 1)
	mp, mq := seedPair()
	c.announce(mp)
	c.announce(mq)
	h := c.hosts[0]
	a, b := h.newPod("primary-pod"), h.newPod("pair-pod")
	a.mustAdd()
	b.mustAdd()
	c.etcd.Stop()
	if err := a.del(); err != nil {
		t.Fatalf("DEL with etcd down: %v", err)
	}
	if l := testenv.Leases(t, filepath.Join(h.dir, "ipam")); len(l) != 1 {
		t.Errorf("want only the pair's lease left, have %v", l)
	}
	c.etcd.Restart()
	list := c.cni.List(t, h.netconf(func(m map[string]any) { m["cniVersion"] = "1.1.0" }))
	args := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: b.rt.ContainerID, IfName: "eth0"}}}
	if err := b.inHost(func() error { return c.cni.Client.GCNetworkList(context.Background(), list, args) }); err != nil {
		t.Fatalf("GC: %v\n%s", err, h.logTail())
	}
	if _, _, err := store.GetPod(context.Background(), c.kv, c.keys, "default", "primary-pod"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GC left primary-pod's record: %v", err)
	}
	b.mustDel()
	c.assertNothingLeft()
}

func TestNonRatchetPodNeverTouchesEtcd(t *testing.T) {
	c := newCluster(t, "v3", 1)
	h := c.hosts[0]
	p := h.newPod("plain")
	p.rt.Args = [][2]string{{"IgnoreUnknown", "1"}} // no pod name: nothing to look up
	before := h.fwd.Conns.Load()
	p.mustAdd()
	if err := p.check(); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	p.mustDel()
	if n := h.fwd.Conns.Load() - before; n != 0 {
		t.Errorf("a non-ratchet pod opened %d etcd connections", n)
	}
	c.assertNothingLeft()
}

func TestStatusNeedsEtcd(t *testing.T) {
	c := newCluster(t, "v3", 1)
	h := c.hosts[0]
	list := c.cni.List(t, h.netconf(func(m map[string]any) { m["cniVersion"] = "1.1.0" }))
	status := func() error {
		return h.ns.Do(func(ns.NetNS) error { return c.cni.Client.GetStatusNetworkList(context.Background(), list) })
	}
	if err := status(); err != nil {
		t.Fatalf("STATUS with etcd up: %v", err)
	}
	c.etcd.Stop()
	err := status()
	if err == nil || cniCode(t, err) != types.ErrTryAgainLater {
		t.Fatalf("STATUS with etcd down: %v, want code 11", err)
	}
	c.etcd.Restart()
}
