package wiring

import (
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// TestLinkNeverDeletesAnInterfaceItDoesNotOwn: an interface of another
// plugin (or of the pod) under a name ratchet wants is never removed, by
// Remove, RemoveOwned or RemoveLinks; ratchet's own ends carry their
// owner in the alias and are removed only for that owner.
func TestLinkNeverDeletesAnInterfaceItDoesNotOwn(t *testing.T) {
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	na.MustExec(t, "ip", "link", "add", "net1", "type", "bridge") // another plugin's
	a := Endpoint{Netns: na.Path(), Name: "in1", Owner: "a.in1--b.in1"}
	b := Endpoint{Netns: nb.Path(), Name: "in1", Owner: "a.in1--b.in1"}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	info := mustLookup(t, na, "in1")
	if !info.Ours || info.Owner != "a.in1--b.in1" {
		t.Fatalf("ratchet's end: ours %v, owner %q; want its link ID", info.Ours, info.Owner)
	}
	if other := mustLookup(t, na, "net1"); other.Ours {
		t.Fatal("a bridge ratchet did not create reports as ratchet's")
	}
	if err := Remove(testCtx(t), na.Path(), "net1"); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Remove of the foreign net1 = %v, want ErrNotOwned", err)
	}
	if err := RemoveOwned(testCtx(t), na.Path(), "in1", "c.x--a.in1"); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("RemoveOwned for another link = %v, want ErrNotOwned", err)
	}
	n, err := RemoveLinks(testCtx(t), na.Path(), []string{"net1", "in1", "lo"})
	if err != nil || n != 1 {
		t.Fatalf("RemoveLinks = %d, %v; want only in1 removed", n, err)
	}
	requireLinks(t, na, "net1")
	requireLinks(t, nb)
	if err := RemoveOwned(testCtx(t), na.Path(), "in1", "a.in1--b.in1"); err != nil {
		t.Fatalf("RemoveOwned of a missing end = %v, want success", err)
	}
}
