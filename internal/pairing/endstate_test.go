package pairing

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// setLink changes a link's record as ratchetctl does.
func (h *harness) setLink(id string, change func(*store.LinkRecord)) {
	h.t.Helper()
	_, _, err := store.Update(context.Background(), h.kv, h.keys.Link("default", id), func(r *store.LinkRecord) error {
		change(r)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// waitIface waits until the fake interface satisfies ok (bounded).
func (h *harness) waitIface(p *pod, name, what string, ok func(fakeIface) bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		i, found := h.wire.get(p.netns, name)
		if found && ok(i) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s of %s: %s never held (now %+v)", name, p.id, what, i)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLink waits until the link's record satisfies ok (bounded).
func (h *harness) waitLink(id, what string, ok func(store.LinkRecord) bool) store.LinkRecord {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, _, err := store.GetLink(context.Background(), h.kv, h.keys, "default", id)
		if err == nil && ok(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("link %s: %s never held (now %+v, err %v)", id, what, rec, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A link set down (in its record) is taken down at both ends by each
// end's host, and up again; same host and across hosts. CHECK follows the
// admin state.
func TestLinkDownAndUpReachBothEnds(t *testing.T) {
	for _, hosts := range [][2]string{{"h1", "h1"}, {"h1", "h2"}} {
		t.Run(hosts[0]+"-"+hosts[1], func(t *testing.T) {
			h := newHarness(t)
			p, q := addedSeedPair(t, h, hosts[0], hosts[1])
			id := store.LinkID("primary-pod", "in1", "pair-pod", "in2")
			h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
			h.setLink(id, func(r *store.LinkRecord) { r.Admin = store.AdminDown })
			h.waitIface(p, "in1", "down", func(i fakeIface) bool { return i.down })
			h.waitIface(q, "in2", "down", func(i fakeIface) bool { return i.down })
			if err := h.check(p); err != nil {
				t.Fatalf("CHECK of a link set down: %v", err)
			}
			h.setLink(id, func(r *store.LinkRecord) { r.Admin = store.AdminUp })
			h.waitIface(p, "in1", "up", func(i fakeIface) bool { return !i.down })
			h.waitIface(q, "in2", "up", func(i fakeIface) bool { return !i.down })
			h.wire.mu.Lock()
			h.wire.nets[p.netns]["in1"].down = true // drift behind the agent's back
			h.wire.mu.Unlock()
			if err := h.check(p); err == nil || !strings.Contains(err.Error(), "in1 is down") {
				t.Fatalf("CHECK of an end down while the link is up = %v", err)
			}
		})
	}
}

// An impairment set on one end is applied there only, recorded with how
// it is applied; one the kernel cannot apply is recorded "not applied"
// and CHECK says so; clearing it removes it.
func TestImpairmentIsAppliedByEachEndsHost(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h2")
	id := store.LinkID("primary-pod", "in1", "pair-pod", "in2")
	h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	h.setLink(id, func(r *store.LinkRecord) {
		a, b := r.EndsOf("primary-pod")
		a.Netem = &netem.Spec{Loss: "30%"}
		b.Netem = &netem.Spec{Delay: "50ms"}
		r.NetemSet = true
	})
	h.waitIface(p, "in1", "loss", func(i fakeIface) bool { return strings.Contains(i.netem, `"loss":"30%"`) })
	h.waitIface(q, "in2", "delay", func(i fakeIface) bool { return strings.Contains(i.netem, `"delay":"50ms"`) })
	rec := h.waitLink(id, "applied recorded", func(r store.LinkRecord) bool {
		a, b := r.EndsOf("primary-pod")
		return a.Applied == fakeApplied && strings.Contains(b.Applied, "not applied: delay")
	})
	if err := h.check(p); err != nil {
		t.Fatalf("CHECK of the applied end: %v", err)
	}
	if err := h.check(q); err == nil || !strings.Contains(err.Error(), "not applied: delay") {
		t.Fatalf("CHECK of the end whose delay is not applied = %v", err)
	}
	h.setLink(id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = nil, nil })
	h.waitIface(p, "in1", "cleared", func(i fakeIface) bool { return i.netem == "" })
	h.waitIface(q, "in2", "cleared", func(i fakeIface) bool { return i.netem == "" })
	h.waitLink(id, "applied cleared", func(r store.LinkRecord) bool { return r.A.Applied == "" && r.B.Applied == "" })
	_ = rec
}

// An impairment declared with the link is in force when the ADD that
// wires it returns; a changed declaration is re-applied without rebuilding
// the link, unless the link was set at run time.
func TestDeclaredImpairmentIsInForceAtAdd(t *testing.T) {
	h := newHarness(t)
	link := metadata.Link{Peer: "b", IfName: "e1", PeerIfName: "e2", Netem: &netem.Spec{Rate: "1mbit"}, PeerNetem: &netem.Spec{Loss: "1%"}}
	a := h.newPod("h1", "c-a", declaring("a", link))
	b := h.newPod("h1", "c-b", declaring("b"))
	mustAdd(t, h, b)
	mustAdd(t, h, a)
	if i, _ := h.wire.get(a.netns, "e1"); !strings.Contains(i.netem, `"rate":"1mbit"`) {
		t.Fatalf("a's end after ADD: %+v, want rate 1mbit", i)
	}
	if i, _ := h.wire.get(b.netns, "e2"); !strings.Contains(i.netem, `"loss":"1%"`) {
		t.Fatalf("b's end after ADD: %+v, want loss 1%%", i)
	}
	// The declaration changes (a re-created with another netem).
	link.Netem = &netem.Spec{Rate: "2mbit"}
	a2 := h.newPod("h1", "c-a2", declaring("a", link))
	mustAdd(t, h, a2)
	h.waitIface(a2, "e1", "rate 2mbit", func(i fakeIface) bool { return strings.Contains(i.netem, `"rate":"2mbit"`) })
}

// While the peer of a cross-host link is gone, the survivor's end stays
// (parked: down, same interface); when the peer is re-created on another
// host the agent re-points that very interface and brings it up.
func TestSurvivorsEndIsParkedThenRepointedInPlace(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h2")
	h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	h.waitIface(p, "in1", "up", func(i fakeIface) bool { return !i.down })
	mustDel(t, h, q)
	h.waitIface(p, "in1", "parked (down)", func(i fakeIface) bool { return i.down })
	q2 := h.newPod("h3", "c-pair-2", q.labels)
	mustAdd(t, h, q2)
	h.waitIface(p, "in1", "re-pointed at h3 and up", func(i fakeIface) bool {
		return !i.down && i.remote.String() == hostAddr("h3")
	})
	h.wire.mu.Lock()
	n := h.wire.repoints
	h.wire.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d ends re-pointed in place, want 1 (the survivor's)", n)
	}
	rec := h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	if mine, _ := rec.EndsOf("primary-pod"); mine.Remote != hostAddr("h3") || mine.ContainerID != p.id {
		t.Fatalf("survivor's end %+v, want remote h3 and the same container", mine)
	}
}

// While the peer of a same-host veth is gone, its end is parked and the
// survivor's interface stays (down); the peer's next incarnation on the
// host gets the parked end back (no rebuild). One on another host gets a
// vxlan, and the survivor keeps its veth all the same: the parked end is
// carried to that host by a vxlan in the host netns (stitched), re-pointed
// when the peer moves on, and given back when the peer returns.
func TestSurvivorsVethEndIsKeptWhileItsPeerIsAway(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h1")
	mustDel(t, h, q)
	h.waitIface(p, "in1", "kept, its peer parked", func(i fakeIface) bool { return i.kind == "veth" && i.peerNS == "" })
	h.wire.mu.Lock()
	kept := h.wire.nets[p.netns]["in1"]
	h.wire.mu.Unlock()
	same := func(what string) {
		t.Helper()
		h.wire.mu.Lock()
		defer h.wire.mu.Unlock()
		if h.wire.nets[p.netns]["in1"] != kept {
			t.Fatalf("%s: the survivor's interface was rebuilt", what)
		}
	}
	stitchedTo := func(host string) func(store.LinkRecord) bool {
		return func(r store.LinkRecord) bool {
			mine, _ := r.EndsOf("primary-pod")
			return r.State == store.LinkWired && r.VNI != 0 && mine.Stitched && mine.Remote == hostAddr(host) && mine.ContainerID == p.id
		}
	}
	id := h.link("primary-pod", "in1", "pair-pod", "in2").ID

	q2 := h.newPod("h1", "c-pair-2", q.labels)
	mustAdd(t, h, q2)
	h.waitIface(p, "in1", "up again", func(i fakeIface) bool { return !i.down })
	same("peer back on the host")
	h.wire.mu.Lock()
	unparks := h.wire.unparks
	h.wire.mu.Unlock()
	if unparks != 1 {
		t.Fatalf("%d unparks, want one", unparks)
	}
	if i, ok := h.wire.get(q2.netns, "in2"); !ok || i.down || !slices.Equal(i.addrs, []string{"192.168.2.101/24"}) {
		t.Fatalf("the returning pod's end: %+v (%v)", i, ok)
	}
	h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)

	mustDel(t, h, q2)
	q3 := h.newPod("h2", "c-pair-3", q.labels)
	mustAdd(t, h, q3)
	h.waitLink(id, "stitched to h2", stitchedTo("h2"))
	h.waitIface(p, "in1", "the kept veth, up", func(i fakeIface) bool { return i.kind == "veth" && !i.down })
	same("peer on another host")
	if i, ok := h.wire.get(q3.netns, "in2"); !ok || i.kind != "vxlan" || !i.remote.Equal(net.ParseIP(hostAddr("h1"))) {
		t.Fatalf("the peer's end on h2: %+v (%v), want a vxlan to h1", i, ok)
	}
	if err := h.check(p); err != nil {
		t.Fatalf("CHECK of the stitched end: %v", err)
	}
	h.wire.mu.Lock()
	delete(h.wire.stitched, id) // the host vxlan vanishes behind ratchet's back
	h.wire.mu.Unlock()
	if err := h.check(p); err == nil || !strings.Contains(err.Error(), "host's vxlan") {
		t.Fatalf("CHECK with the host vxlan gone = %v, want an error naming it", err)
	}
	h.wire.mu.Lock()
	h.wire.stitched[id] = wiring.VxlanOptions{VNI: int(h.link("primary-pod", "in1", "pair-pod", "in2").VNI), Remote: net.ParseIP(hostAddr("h2"))}
	h.wire.mu.Unlock()

	mustDel(t, h, q3)
	h.waitIface(p, "in1", "down while the peer is away", func(i fakeIface) bool { return i.down })
	q4 := h.newPod("h3", "c-pair-4", q.labels)
	mustAdd(t, h, q4)
	h.waitLink(id, "re-pointed to h3", stitchedTo("h3"))
	h.waitIface(p, "in1", "up again", func(i fakeIface) bool { return !i.down })
	same("peer moved on to a third host")

	mustDel(t, h, q4)
	q5 := h.newPod("h1", "c-pair-5", q.labels)
	mustAdd(t, h, q5)
	h.waitLink(id, "a veth again", func(r store.LinkRecord) bool {
		mine, theirs := r.EndsOf("primary-pod")
		return r.State == store.LinkWired && r.VNI == 0 && !mine.Stitched && theirs.ContainerID == q5.id && theirs.Up
	})
	h.waitIface(p, "in1", "up again", func(i fakeIface) bool { return !i.down })
	same("peer back on the host again")
	h.wire.mu.Lock()
	unparks, left := h.wire.unparks, len(h.wire.stitched)
	h.wire.mu.Unlock()
	if unparks != 2 || left != 0 {
		t.Fatalf("%d unparks, %d host vxlans; want 2 and none", unparks, left)
	}

	// The survivor leaves while stitched: its host vxlan goes with it.
	mustDel(t, h, q5)
	q6 := h.newPod("h2", "c-pair-6", q.labels)
	mustAdd(t, h, q6)
	h.waitLink(id, "stitched to h2", stitchedTo("h2"))
	mustDel(t, h, p)
	mustDel(t, h, q6)
	expectNothingLeft(t, h, p, q, q2, q3, q4, q5, q6)
	h.wire.mu.Lock()
	defer h.wire.mu.Unlock()
	if len(h.wire.parked) != 0 {
		t.Fatalf("parked ends left: %v", h.wire.parked)
	}
}
