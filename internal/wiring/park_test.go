package wiring

import (
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// A parked veth end leaves its peer in place (name, addresses) without
// carrier; unparked into a new netns, the link carries traffic again and
// nothing is left in the host netns.
func TestParkKeepsThePeerEndAndUnparkRestoresTheLink(t *testing.T) {
	host, na, nb, nb2 := testenv.NewNS(t), testenv.NewNS(t), testenv.NewNS(t), testenv.NewNS(t)
	owner := "a.in1--b.in1"
	a := Endpoint{Netns: na.Path(), Name: "in1", Owner: owner, Addresses: []string{"10.13.0.1/24"}}
	b := Endpoint{Netns: nb.Path(), Name: "in1", Owner: owner, Addresses: []string{"10.13.0.2/24"}}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	before := mustLookup(t, na, "in1")
	if err := Park(testCtx(t), nb.Path(), "in1", owner, host.Path()); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, nb)
	requireLinks(t, host, ParkedName(owner))
	kept := mustLookup(t, na, "in1")
	if kept.Index != before.Index || !kept.HasAddress("10.13.0.1/24") || kept.OperUp {
		t.Fatalf("survivor's end after park: index %d (was %d) addrs %v carrier %v", kept.Index, before.Index, kept.Addresses, kept.OperUp)
	}
	b2 := Endpoint{Netns: nb2.Path(), Name: "in1", Owner: owner, Addresses: []string{"10.13.0.2/24"}}
	if err := Unpark(testCtx(t), b2, host.Path()); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, host)
	requirePing(t, na, "10.13.0.2")
	if again := mustLookup(t, na, "in1"); again.Index != before.Index {
		t.Fatalf("survivor's end was rebuilt (index %d, was %d)", again.Index, before.Index)
	}
	if err := Unpark(testCtx(t), b2, host.Path()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unpark with nothing parked = %v, want ErrNotFound", err)
	}
	if err := Park(testCtx(t), nb2.Path(), "in1", "c.x--a.in1", host.Path()); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("park for another link = %v, want ErrNotOwned", err)
	}
}
