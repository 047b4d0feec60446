package wiring

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestVethPairPingsBothFamiliesWithMTU(t *testing.T) {
	for _, tc := range []struct{ mtu, want int }{{9000, 9000}, {1400, 1400}, {0, DefaultVethMTU}} {
		t.Run(fmt.Sprintf("mtu%d", tc.mtu), func(t *testing.T) {
			t.Parallel()
			na, nb := testenv.NewNS(t), testenv.NewNS(t)
			a := Endpoint{Netns: na.Path(), Name: "eth1", MTU: tc.mtu,
				Addresses: []string{"192.0.2.1/24", "2001:db8:1::1/64"}}
			b := Endpoint{Netns: nb.Path(), Name: "eth1", MTU: tc.mtu,
				Addresses: []string{"192.0.2.2/24", "2001:db8:1::2/64"}}
			if err := VethPair(testCtx(t), a, b); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = Remove(testCtx(t), a.Netns, a.Name) })

			requirePing(t, na, "192.0.2.2", "2001:db8:1::2")
			requirePing(t, nb, "192.0.2.1", "2001:db8:1::1")
			requireInfo(t, mustLookup(t, na, "eth1"), "veth", tc.want, a)
			requireInfo(t, mustLookup(t, nb, "eth1"), "veth", tc.want, b)
			requireNoTempLinks(t, na, nb)
		})
	}
}

func TestVethPairEndsMayDifferInNameAndMTU(t *testing.T) {
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	a := Endpoint{Netns: na.Path(), Name: "left0", MTU: 1400, Addresses: []string{"203.0.113.1/31"}}
	b := Endpoint{Netns: nb.Path(), Name: "right0", MTU: 1500, Addresses: []string{"203.0.113.0/31"}}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	requirePing(t, na, "203.0.113.0")
	requireInfo(t, mustLookup(t, na, "left0"), "veth", 1400, a)
	requireInfo(t, mustLookup(t, nb, "right0"), "veth", 1500, b)
}

func TestVethPairWithinOneNetns(t *testing.T) {
	n := testenv.NewNS(t)
	a := Endpoint{Netns: n.Path(), Name: "in0"}
	b := Endpoint{Netns: n.Path(), Name: "in1"}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, n, "in0", "in1")
	if err := Remove(testCtx(t), n.Path(), "in1"); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, n)
}

// An end with an IPv4 address announces itself when it comes up
// (arp_notify), so a peer that knew an earlier end's MAC address is told
// at once.
func TestEndsAnnounceTheirAddressWhenUp(t *testing.T) {
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	a := Endpoint{Netns: na.Path(), Name: "in1", Owner: "a.in1--b.in1", Addresses: []string{"10.14.0.1/24"}}
	b := Endpoint{Netns: nb.Path(), Name: "in1", Owner: "a.in1--b.in1", Addresses: []string{"10.14.0.2/24"}}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testenv.NS{na, nb} {
		if got := strings.TrimSpace(n.MustExec(t, "cat", "/proc/sys/net/ipv4/conf/in1/arp_notify")); got != "1" {
			t.Errorf("arp_notify on in1 in %s = %s, want 1", n.Name, got)
		}
	}
}
