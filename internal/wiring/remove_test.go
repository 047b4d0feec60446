package wiring

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// wirePair wires eth1 between two new netns and returns them.
func wirePair(t *testing.T) (*testenv.NS, *testenv.NS) {
	t.Helper()
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	a := Endpoint{Netns: na.Path(), Name: "eth1", Addresses: []string{"192.0.2.1/24"}}
	b := Endpoint{Netns: nb.Path(), Name: "eth1", Addresses: []string{"192.0.2.2/24"}}
	if err := VethPair(testCtx(t), a, b); err != nil {
		t.Fatal(err)
	}
	return na, nb
}

func TestRemoveTwiceSucceeds(t *testing.T) {
	na, nb := wirePair(t)
	for i := range 2 {
		if err := Remove(testCtx(t), na.Path(), "eth1"); err != nil {
			t.Fatalf("remove #%d: %v", i+1, err)
		}
	}
	requireLinks(t, na)
	requireLinks(t, nb)
}

func TestRemoveOneEndRemovesPeer(t *testing.T) {
	na, nb := wirePair(t)
	if err := Remove(testCtx(t), nb.Path(), "eth1"); err != nil {
		t.Fatal(err)
	}
	requireLinks(t, na)
	requireLinks(t, nb)
	if _, err := Lookup(testCtx(t), na.Path(), "eth1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of removed peer: err = %v, want ErrNotFound", err)
	}
}

func TestRemoveInDeletedNetnsSucceeds(t *testing.T) {
	na, _ := wirePair(t)
	if out, err := exec.Command("ip", "netns", "del", na.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	if err := Remove(testCtx(t), na.Path(), "eth1"); err != nil {
		t.Fatalf("Remove in deleted netns: %v", err)
	}
	_, err := Lookup(testCtx(t), na.Path(), "eth1")
	if !errors.Is(err, ErrNetnsGone) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup in deleted netns: err = %v, want ErrNetnsGone and ErrNotFound", err)
	}
}

func TestWiringIntoMissingNetnsFailsWithErrNetnsGone(t *testing.T) {
	na := testenv.NewNS(t)
	a := Endpoint{Netns: na.Path(), Name: "eth1"}
	b := Endpoint{Netns: "/run/netns/" + testenv.UniqueName("gone-"), Name: "eth1"}
	if err := VethPair(testCtx(t), a, b); !errors.Is(err, ErrNetnsGone) {
		t.Fatalf("err = %v, want ErrNetnsGone", err)
	}
	requireLinks(t, na)
	requireNoTempLinks(t, na)
}

func TestWiringIntoTakenNameFailsWithErrExists(t *testing.T) {
	for _, side := range []string{"a", "b"} {
		t.Run("taken in "+side, func(t *testing.T) {
			na, nb := testenv.NewNS(t), testenv.NewNS(t)
			taken := map[string]*testenv.NS{"a": na, "b": nb}[side]
			taken.MustExec(t, "ip", "link", "add", "eth1", "type", "bridge")
			a := Endpoint{Netns: na.Path(), Name: "eth1", Addresses: []string{"192.0.2.1/24"}}
			b := Endpoint{Netns: nb.Path(), Name: "eth1", Addresses: []string{"192.0.2.2/24"}}
			if err := VethPair(testCtx(t), a, b); !errors.Is(err, ErrExists) {
				t.Fatalf("err = %v, want ErrExists", err)
			}
			requireLinks(t, taken, "eth1")
			if info := mustLookup(t, taken, "eth1"); info.Kind != "bridge" {
				t.Errorf("existing eth1 replaced by a %s", info.Kind)
			}
			requireNoTempLinks(t, na, nb)
		})
	}
}

func TestVxlanIntoTakenNameFailsWithErrExists(t *testing.T) {
	u := newUnderlay(t)
	u.podA.MustExec(t, "ip", "link", "add", "vx0", "type", "bridge")
	err := Vxlan(testCtx(t), Endpoint{Netns: u.podA.Path(), Name: "vx0"},
		VxlanOptions{VNI: 5, Remote: net.ParseIP("198.51.100.2"), HostNetns: u.hostA.Path()})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	requireLinks(t, u.podA, "vx0")
	requireLinks(t, u.hostA, "ul0")
	requireNoTempLinks(t, u.hostA, u.podA)
}

// TestNameTakenWhileWiringRollsBack takes the final name after the early
// check, so the rename fails part way: both ends must be gone afterwards.
func TestNameTakenWhileWiringRollsBack(t *testing.T) {
	na, nb := testenv.NewNS(t), testenv.NewNS(t)
	ctx := context.WithValue(testCtx(t), beforeRenameKey{}, func(ep Endpoint) {
		if ep.Netns == nb.Path() {
			nb.MustExec(t, "ip", "link", "add", ep.Name, "type", "bridge")
		}
	})
	a := Endpoint{Netns: na.Path(), Name: "eth1", Addresses: []string{"192.0.2.1/24", "2001:db8:2::1/64"}}
	b := Endpoint{Netns: nb.Path(), Name: "eth2", Addresses: []string{"192.0.2.2/24", "2001:db8:2::2/64"}}
	err := VethPair(ctx, a, b)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	t.Log(err)
	requireLinks(t, na)
	requireLinks(t, nb, "eth2")
	requireNoTempLinks(t, na, nb)
}
