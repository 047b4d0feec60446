package wiring

import (
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// A link set down: the end is down and the veth peer loses carrier; set up
// again both have carrier. Only ratchet's own interface of that link is
// touched.
func TestSetAdminTakesCarrierFromBothEnds(t *testing.T) {
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	na.MustExec(t, "ip", "link", "add", "net1", "type", "bridge") // another plugin's
	owner := "a.in1--b.in1"
	a := Endpoint{Netns: na.Path(), Name: "in1", Owner: owner}
	b := Endpoint{Netns: nb.Path(), Name: "in1", Owner: owner}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	if err := SetAdmin(testCtx(t), na.Path(), "in1", owner, false); err != nil {
		t.Fatal(err)
	}
	if ia, ib := mustLookup(t, na, "in1"), mustLookup(t, nb, "in1"); ia.AdminUp || ia.OperUp || ib.OperUp {
		t.Fatalf("after down: a admin %v carrier %v, b carrier %v; want none", ia.AdminUp, ia.OperUp, ib.OperUp)
	}
	if err := SetAdmin(testCtx(t), na.Path(), "in1", owner, false); err != nil {
		t.Fatalf("second down: %v", err)
	}
	if err := SetAdmin(testCtx(t), na.Path(), "in1", owner, true); err != nil {
		t.Fatal(err)
	}
	if ia, ib := mustLookup(t, na, "in1"), mustLookup(t, nb, "in1"); !ia.OperUp || !ib.OperUp {
		t.Fatalf("after up: carrier a %v b %v; want both", ia.OperUp, ib.OperUp)
	}
	if err := SetAdmin(testCtx(t), na.Path(), "net1", owner, false); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("down of a foreign interface = %v, want ErrNotOwned", err)
	}
	if err := SetAdmin(testCtx(t), na.Path(), "in1", "c.x--a.in1", false); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("down for another link = %v, want ErrNotOwned", err)
	}
	if err := SetAdmin(testCtx(t), na.Path(), "in9", owner, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("down of a missing interface = %v, want ErrNotFound", err)
	}
}
