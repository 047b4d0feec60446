package wiring

import (
	"errors"
	"net"
	"testing"
)

// A vxlan end re-pointed in place keeps its index, name, addresses and
// VNI, and carries traffic to the new remote.
func TestRepointKeepsTheInterface(t *testing.T) {
	u := newUnderlay(t)
	ctx := testCtx(t)
	owner := "a.vx0--b.vx0"
	a := Endpoint{Netns: u.podA.Path(), Name: "vx0", Owner: owner, Addresses: []string{"10.12.0.1/24"}}
	b := Endpoint{Netns: u.podB.Path(), Name: "vx0", Owner: owner, Addresses: []string{"10.12.0.2/24"}}
	// A points at a host that is not there; B at A.
	if err := Vxlan(ctx, a, VxlanOptions{VNI: 4300, Remote: net.ParseIP("198.51.100.9"), HostNetns: u.hostA.Path()}); err != nil {
		t.Fatal(err)
	}
	if err := Vxlan(ctx, b, VxlanOptions{VNI: 4300, Remote: net.ParseIP("198.51.100.1"), HostNetns: u.hostB.Path()}); err != nil {
		t.Fatal(err)
	}
	before := mustLookup(t, u.podA, "vx0")
	if err := Repoint(ctx, u.podA.Path(), "vx0", owner, net.ParseIP("198.51.100.2")); err != nil {
		t.Fatal(err)
	}
	after := mustLookup(t, u.podA, "vx0")
	if after.Index != before.Index || after.VNI != 4300 || after.Remote.String() != "198.51.100.2" || !after.HasAddress("10.12.0.1/24") {
		t.Fatalf("after re-point: index %d (was %d) VNI %d remote %s addrs %v", after.Index, before.Index, after.VNI, after.Remote, after.Addresses)
	}
	requirePing(t, u.podA, "10.12.0.2")
	if err := Repoint(ctx, u.podA.Path(), "vx0", "c.x--a.vx0", net.ParseIP("198.51.100.2")); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("re-point for another link = %v, want ErrNotOwned", err)
	}
	if err := Repoint(ctx, u.podA.Path(), "vx9", owner, net.ParseIP("198.51.100.2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("re-point of a missing end = %v, want ErrNotFound", err)
	}
}
