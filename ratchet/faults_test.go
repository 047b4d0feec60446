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
	"github.com/ratchet-cni/ratchet/internal/testcluster"
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
	c := testcluster.New(t, "v3", 1)
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
			if _, err := store.PutJSON(context.Background(), c.KV, c.Keys.Announce("default", "bad-pod"), labels); err != nil {
				t.Fatal(err)
			}
			p := c.Hosts[0].NewPod("bad-pod")
			err := p.Add()
			if err == nil {
				p.MustDel()
				t.Fatal("ADD with bad metadata succeeded")
			}
			if code := cniCode(t, err); code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("error (code %d) %v, want code 7 naming %s", code, err, tc.wantKey)
			}
			if links := p.Links(); len(links) > 0 {
				t.Errorf("pod netns has links %v", links)
			}
			c.AssertNothingLeft()
		})
	}
}

func TestEtcdDownAtAddIsTryAgainLaterAndLeavesNothing(t *testing.T) {
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		c := testcluster.New(t, api, 1)
		mp, _ := testcluster.SeedPair(t)
		c.Announce(mp)
		p := c.Hosts[0].NewPod("primary-pod")
		c.Etcd.Stop()
		err := p.Add()
		if err == nil {
			t.Fatal("ADD with etcd down succeeded")
		}
		if code := cniCode(t, err); code != types.ErrTryAgainLater {
			t.Errorf("code %d (%v), want 11", code, err)
		}
		if links := p.Links(); len(links) > 0 {
			t.Errorf("pod netns has links %v", links)
		}
		c.Etcd.Restart()
		c.AssertNothingLeft()
	})
}

func TestEtcdDownAtDelStillReleasesDelegatesAndGCFinishes(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.AnnounceSeedPair()
	h := c.Hosts[0]
	a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	c.Etcd.Stop()
	if err := a.Del(); err != nil {
		t.Fatalf("DEL with etcd down: %v", err)
	}
	if l := testenv.Leases(t, filepath.Join(h.Dir, "ipam")); len(l) != 1 {
		t.Errorf("want only the pair's lease left, have %v", l)
	}
	c.Etcd.Restart()
	list := c.CNI.List(t, h.Netconf(func(m map[string]any) { m["cniVersion"] = "1.1.0" }))
	args := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: b.RT.ContainerID, IfName: "eth0"}}}
	if err := b.InHost(func() error { return c.CNI.Client.GCNetworkList(context.Background(), list, args) }); err != nil {
		t.Fatalf("GC: %v\n%s", err, h.LogTail())
	}
	if _, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", "primary-pod"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GC left primary-pod's record: %v", err)
	}
	b.MustDel()
	c.AssertNothingLeft()
}

func TestNonRatchetPodNeverTouchesEtcd(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	h := c.Hosts[0]
	p := h.NewPod("plain")
	p.RT.Args = [][2]string{{"IgnoreUnknown", "1"}} // no pod name: nothing to look up
	h.StartAgent()                                  // the agent's one connection is not the pod's
	before := h.Fwd.Conns.Load()
	p.MustAdd()
	if err := p.Check(); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	p.MustDel()
	if n := h.Fwd.Conns.Load() - before; n != 0 {
		t.Errorf("a non-ratchet pod opened %d etcd connections", n)
	}
	c.AssertNothingLeft()
}

func TestStatusNeedsEtcd(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	h := c.Hosts[0]
	list := c.CNI.List(t, h.Netconf(func(m map[string]any) { m["cniVersion"] = "1.1.0" }))
	status := func() error {
		return h.NS.Do(func(ns.NetNS) error { return c.CNI.Client.GetStatusNetworkList(context.Background(), list) })
	}
	if err := status(); err != nil {
		t.Fatalf("STATUS with etcd up: %v", err)
	}
	c.Etcd.Stop()
	err := status()
	if err == nil || cniCode(t, err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), "etcd") {
		t.Fatalf("STATUS with etcd down: %v, want code 50 naming etcd", err)
	}
	c.Etcd.Restart()
}
