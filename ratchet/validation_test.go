package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// badLabels is a ratchet pod's announced labels with kv set over a valid
// primary pod (a value of "" deletes the key).
func badLabels(name string, kv ...string) map[string]string {
	m := map[string]string{
		"ratchet": "true", "ratchet.pod_name": name, "ratchet.primary": "true",
		"ratchet.local_ifname": "in1", "ratchet.local_ip": "192.0.2.1/24",
		"ratchet.pair_name": "peer-x", "ratchet.pair_ifname": "in2", "ratchet.pair_ip": "192.0.2.2/24",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

// linkEntry is a ratchet.links value with one link to peer-y.
func linkEntry(fields string) string {
	return `[{"peer":"peer-y","ifname":"x1","peer_ifname":"y1"` + fields + `}]`
}

// badInput is every case of issue 10's items 5, 6 and 11 that reaches the
// plugin through an announced record: key is the key the error must name.
func badInput() []struct {
	name, key string
	kv        []string
} {
	big := strings.Repeat("a", 600<<10) // two of them fit in one etcd request
	many := "[" + strings.Repeat(`{"peer":"peer-y","ifname":"x","peer_ifname":"y"},`, metadata.MaxLinks) +
		`{"peer":"peer-y","ifname":"x","peer_ifname":"y"}]`
	return []struct {
		name, key string
		kv        []string
	}{
		{"percent ifname", "ratchet.local_ifname", []string{"ratchet.local_ifname", "x%d"}},
		{"percent pair ifname", "ratchet.pair_ifname", []string{"ratchet.pair_ifname", "in%"}},
		{"percent links ifname", "ratchet.links[0].ifname", []string{"ratchet.links", `[{"peer":"peer-y","ifname":"m%d","peer_ifname":"y"}]`}},
		{"loopback", "ratchet.local_ip", []string{"ratchet.local_ip", "127.0.0.1/8"}},
		{"v4-mapped", "ratchet.local_ip", []string{"ratchet.local_ip", "::ffff:192.0.2.1"}},
		{"limited broadcast", "ratchet.pair_ip", []string{"ratchet.pair_ip", "255.255.255.255/32"}},
		{"zero prefix", "ratchet.local_ip", []string{"ratchet.local_ip", "192.0.2.1/0"}},
		{"network address", "ratchet.local_ip", []string{"ratchet.local_ip", "192.0.2.0/24"}},
		{"broadcast address", "ratchet.pair_ip", []string{"ratchet.pair_ip", "192.0.2.255/24"}},
		{"same address", "ratchet.pair_ip", []string{"ratchet.pair_ip", "192.0.2.1/24"}},
		{"families differ", "ratchet.pair_ip", []string{"ratchet.pair_ip", "2001:db8::2/64"}},
		{"multicast", "ratchet.local_ip", []string{"ratchet.local_ip", "224.0.0.5/24"}},
		{"unspecified", "ratchet.local_ip", []string{"ratchet.local_ip", "0.0.0.0/24"}},
		{"MTU 100 with IPv6", "ratchet.links[0].mtu", []string{"ratchet.links", linkEntry(`,"ip":"2001:db8::1/64","peer_ip":"2001:db8::2/64","mtu":100`)}},
		{"big target pod", "ratchet.target_pod", []string{"ratchet.target_pod", big}},
		{"two big kept keys", "ratchet.target_pod", []string{"ratchet.target_pod", big, "ratchet.target_container", big}},
		{"long public ip", "ratchet.public_ip", []string{"ratchet.public_ip", strings.Repeat("1", metadata.MaxKeptLen+1)}},
		{"too many links", "ratchet.links", []string{"ratchet.links", many}},
		{"links too long", "ratchet.links", []string{"ratchet.links", "[" + strings.Repeat(" ", metadata.MaxLinksLen) + "]"}},
		{"long pod name", "ratchet.pod_name", []string{"ratchet.pod_name", strings.Repeat("p", 64)}},
		{"long ifname", "ratchet.local_ifname", []string{"ratchet.local_ifname", strings.Repeat("i", 16)}},
	}
}

// Every bad input of items 5, 6 and 11 fails ADD with code 7 naming the
// key, and nothing is created: no interface, lease, cache or record.
func TestBadMetadataIsCode7NamingTheKeyAndCreatesNothing(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	for i, tc := range badInput() {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("bad-%d", i)
			key := c.Keys.Announce(metadata.DefaultNamespace, name)
			if _, err := store.PutJSON(context.Background(), c.KV, key, badLabels(name, tc.kv...)); err != nil {
				t.Fatalf("announce: %v", err)
			}
			t.Cleanup(func() { _ = c.KV.Delete(context.Background(), key, 0) })
			pod := c.Hosts[0].NewPod(name)
			err := pod.Add()
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, tc.key+": ") {
				t.Errorf("ADD = %v, want code 7 naming %s", err, tc.key)
			}
			if err != nil && len(err.Error()) > 2000 {
				t.Errorf("error message of %d bytes", len(err.Error()))
			}
			if err == nil {
				_ = pod.Del()
			}
			if links := pod.Links(); len(links) > 0 {
				t.Errorf("links left in the pod: %v", links)
			}
			c.AssertNothingLeft()
		})
	}
}

// A vxlan link whose MTU the underlay cannot carry (MTU 9000 over a 1500
// underlay) fails the ADD that wires it with code 7 naming mtu, and leaves
// no interface behind.
func TestVxlanMTUAboveTheUnderlayIsCode7NamingMTU(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	c.Announce(&metadata.Pod{Name: "jumbo-a", Primary: true, Links: []metadata.Link{{
		Peer: "jumbo-b", IfName: "in1", IP: "203.0.113.1/24", PeerIfName: "in2", PeerIP: "203.0.113.2/24", MTU: 9000,
	}}})
	c.Announce(&metadata.Pod{Name: "jumbo-b"})
	a, b := c.Hosts[0].NewPod("jumbo-a"), c.Hosts[1].NewPod("jumbo-b")
	errA := a.Add()
	errB := b.Add()
	var te *types.Error
	switch {
	case errors.As(errB, &te):
	case errors.As(errA, &te):
	default:
		t.Fatalf("ADD a = %v, ADD b = %v; want one of them to fail with code 7 naming mtu\n%s\n%s", errA, errB, a.H.LogTail(), b.H.LogTail())
	}
	if te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, "mtu 9000") {
		t.Errorf("ADD error = %d %q, want code 7 naming mtu", te.Code, te.Msg)
	}
	for _, p := range []*testcluster.Pod{a, b} {
		for _, l := range p.Links() {
			if l == "in1" || l == "in2" {
				t.Errorf("%s has %s after the failed ADD", p.Name, l)
			}
		}
		_ = p.Del()
	}
	c.AssertNothingLeft()
}
