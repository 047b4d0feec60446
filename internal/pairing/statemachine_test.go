package pairing

import (
	"errors"
	"os"
	"time"

	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/memstore"
)

func mustAdd(t *testing.T, h *harness, p *pod) {
	t.Helper()
	if err := h.add(p); err != nil {
		t.Fatalf("ADD %s: %v", p.id, err)
	}
}

func mustDel(t *testing.T, h *harness, p *pod) {
	t.Helper()
	if err := h.del(p); err != nil {
		t.Fatalf("DEL %s: %v", p.id, err)
	}
}

// expectNothingLeft: no records (the agent loop gets a moment to finish), no interfaces of ratchet in the netns.
func expectNothingLeft(t *testing.T, h *harness, pods ...*pod) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	recs := h.records()
	for len(recs) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		recs = h.records()
	}
	if len(recs) > 0 {
		t.Errorf("records left: %v", recs)
	}
	for _, p := range pods {
		for _, n := range h.wire.names(p.netns) {
			if i, _ := h.wire.get(p.netns, n); i.ours {
				t.Errorf("interface %s left in %s", n, p.id)
			}
		}
	}
	h.wire.mu.Lock()
	defer h.wire.mu.Unlock()
	if len(h.wire.stitched) != 0 {
		t.Errorf("host vxlans of kept veths left: %v", h.wire.stitched)
	}
}

func TestSameHostPairWiresOneVethInEitherOrder(t *testing.T) {
	forBothOrders(t, "primary first", "pair first", func(t *testing.T, primaryFirst bool) {
		h := newHarness(t)
		p, q := h.seedPods("h1", "h1")
		order := inOrder(primaryFirst, p, q)
		mustAdd(t, h, order[0])
		if rec := h.link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkPending {
			t.Fatalf("after the first ADD the link is %q, want pending", rec.State)
		}
		mustAdd(t, h, order[1])
		rec := h.link("primary-pod", "in1", "pair-pod", "in2")
		if rec.State != store.LinkWired || !rec.A.Up || !rec.B.Up || rec.VNI != 0 {
			t.Fatalf("link = %+v, want wired veth with both ends up", rec)
		}
		in1, ok1 := h.wire.get(p.netns, "in1")
		in2, ok2 := h.wire.get(q.netns, "in2")
		if !ok1 || !ok2 || in1.kind != "veth" || in1.owner != rec.ID || in2.owner != rec.ID {
			t.Fatalf("interfaces in1 %+v (%v), in2 %+v (%v): want a veth owned by %s", in1, ok1, in2, ok2, rec.ID)
		}
		if !slices.Equal(in1.addrs, []string{"192.168.2.100/24"}) || !slices.Equal(in2.addrs, []string{"192.168.2.101/24"}) {
			t.Errorf("addresses %v / %v", in1.addrs, in2.addrs)
		}
		for _, x := range []*pod{p, q} {
			if err := h.check(x); err != nil {
				t.Errorf("CHECK %s: %v", x.id, err)
			}
		}
		mustDel(t, h, order[0])
		// The survivor keeps its end (parked peer: down, same interface).
		rec = h.link("primary-pod", "in1", "pair-pod", "in2")
		gone, kept := rec.EndsOf(map[bool]string{true: "primary-pod", false: "pair-pod"}[primaryFirst])
		if rec.State != store.LinkPending || gone.Up || !kept.Up {
			t.Errorf("after one DEL the link is %+v, want pending with the survivor's end kept", rec)
		}
		survivor, ifname := order[1], kept.IfName
		h.waitIface(survivor, ifname, "kept, its peer parked", func(i fakeIface) bool { return i.peerNS == "" && i.peerName != "" })
		mustDel(t, h, order[1])
		mustDel(t, h, order[1]) // DEL twice is fine
		expectNothingLeft(t, h, p, q)
	})
}

func TestCrossHostPairCompletesWhicheverComesFirst(t *testing.T) {
	forBothOrders(t, "declarer first", "non-declarer first", func(t *testing.T, primaryFirst bool) {
		h := newHarness(t)
		p, q := h.seedPods("h1", "h2")
		order := inOrder(primaryFirst, p, q)
		mustAdd(t, h, order[0])
		mustAdd(t, h, order[1])
		rec := h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
		h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
		in1, ok1 := h.wire.get(p.netns, "in1")
		in2, ok2 := h.wire.get(q.netns, "in2")
		if !ok1 || !ok2 || in1.kind != "vxlan" || in1.vni != int(rec.VNI) || in2.vni != int(rec.VNI) || rec.VNI < VNIMin {
			t.Fatalf("ends %+v / %+v, record VNI %d: want vxlan ends with the record's VNI", in1, in2, rec.VNI)
		}
		if mine, peer := rec.EndsOf("primary-pod"); mine.Remote != hostAddr("h2") || peer.Remote != hostAddr("h1") {
			t.Errorf("remotes %s / %s, want each other's host", mine.Remote, peer.Remote)
		}
		mustDel(t, h, p)
		mustDel(t, h, q)
		expectNothingLeft(t, h, p, q)
	})
}

func TestLinkNeverDeletesAnInterfaceItDoesNotOwn(t *testing.T) {
	forBothOrders(t, "declarer first", "holder first", func(t *testing.T, primaryFirst bool) {
		h := newHarness(t)
		pl, ql := seedLabels()
		p, q := h.newPod("h1", "c-primary", pl), h.newPod("h1", "c-pair", ql)
		h.wire.foreign(q.netns, "in2") // another plugin's in2 in the peer
		var err error
		if primaryFirst {
			mustAdd(t, h, p)
			err = h.add(q) // q builds: its own name is taken
		} else {
			mustAdd(t, h, q)
			err = h.add(p) // p builds: the peer's name is taken
		}
		if i, ok := h.wire.get(q.netns, "in2"); !ok || i.ours {
			t.Fatalf("the foreign in2 was removed or replaced: %+v, %v", i, ok)
		}
		rec := h.link("primary-pod", "in1", "pair-pod", "in2")
		if primaryFirst {
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "in2") || !strings.Contains(err.Error(), "did not create") {
				t.Fatalf("ADD of the holder = %v, want a conflict naming in2 and its holder", err)
			}
		} else if err != nil || rec.State != store.LinkFailed || !strings.Contains(rec.Reason, "did not create") {
			t.Fatalf("ADD of the declarer = %v, link %q %q: want success and the link failed naming the holder", err, rec.State, rec.Reason)
		}
		if _, ok := h.wire.get(p.netns, "in1"); ok {
			t.Error("a half link in1 was left in the declarer")
		}
		_ = h.del(p)
		_ = h.del(q)
		if _, ok := h.wire.get(q.netns, "in2"); !ok {
			t.Fatal("DEL removed the foreign in2")
		}
	})
}

func TestDelegatesInterfaceNamesAreRejected(t *testing.T) {
	h := newHarness(t)
	pl, _ := seedLabels()
	pl["ratchet.pair_ifname"] = "net1" // the second delegate's interface in the peer
	err := h.add(h.newPod("h1", "c-primary", pl))
	var me *metadata.Error
	if !errors.As(err, &me) || me.Key != metadata.KeyPairIfName {
		t.Fatalf("ADD = %v, want a metadata error naming %s", err, metadata.KeyPairIfName)
	}
	if recs := h.records(); len(recs) > 0 {
		t.Errorf("records written: %v", recs)
	}
}

func TestAnInterfaceEndBelongsToOneLink(t *testing.T) {
	h := newHarness(t)
	target := h.newPod("h1", "c-p", declaring("p"))
	mustAdd(t, h, target)
	var claimers []*pod
	for _, n := range []string{"x", "y", "z"} {
		claimers = append(claimers, h.newPod("h1", "c-"+n, declaring(n, metadata.Link{Peer: "p", IfName: "to-p", PeerIfName: "in1"})))
	}
	mustAdd(t, h, claimers[0])
	owner := store.LinkID("x", "to-p", "p", "in1")
	for _, c := range claimers[1:] {
		err := h.add(c)
		var ec *store.EndConflict
		if !errors.Is(err, ErrConflict) || !errors.As(err, &ec) || ec.Owner != owner {
			t.Fatalf("ADD %s = %v, want a conflict naming link %s", c.id, err, owner)
		}
		if _, ok := h.wire.get(c.netns, "to-p"); ok {
			t.Errorf("%s got an interface to-p", c.id)
		}
	}
	if rec := h.link("x", "to-p", "p", "in1"); rec.State != store.LinkWired {
		t.Fatalf("the owner's link is %q (%s), want wired", rec.State, rec.Reason)
	}
	if err := h.check(target); err != nil {
		t.Errorf("CHECK of the target: %v", err)
	}
	// Once the owner is gone, the end is free for the next claimant.
	mustDel(t, h, claimers[0])
	mustAdd(t, h, claimers[1])
	if rec := h.link("y", "to-p", "p", "in1"); rec.State != store.LinkWired {
		t.Fatalf("after the owner left, y's link is %q (%s), want wired", rec.State, rec.Reason)
	}
}

func TestSameLinkDeclaredTwiceDifferentlyIsAConflict(t *testing.T) {
	h := newHarness(t)
	a := h.newPod("h1", "c-a", declaring("a", metadata.Link{Peer: "b", IfName: "in1", IP: "198.51.100.1/24", PeerIfName: "in2", PeerIP: "198.51.100.2/24"}))
	b := h.newPod("h1", "c-b", declaring("b", metadata.Link{Peer: "a", IfName: "in2", IP: "198.51.100.6/24", PeerIfName: "in1", PeerIP: "198.51.100.5/24"}))
	mustAdd(t, h, a)
	err := h.add(b)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "pods a and b") {
		t.Fatalf("second declarer's ADD = %v, want a conflict naming both declarers", err)
	}
	rec := h.link("a", "in1", "b", "in2")
	if rec.Declarer != "a" || rec.A.IP != "198.51.100.1/24" {
		t.Errorf("record changed: %+v", rec)
	}
	// The same description from both sides is no conflict.
	h.src.set("c-b", declaring("b", metadata.Link{Peer: "a", IfName: "in2", IP: "198.51.100.2/24", PeerIfName: "in1", PeerIP: "198.51.100.1/24"}))
	mustAdd(t, h, b)
}

func TestLinkOfAnEarlierIncarnationIsNotWiredAgain(t *testing.T) {
	h := newHarness(t)
	a := h.newPod("h1", "c-a1", declaring("a", metadata.Link{Peer: "b", IfName: "old1", PeerIfName: "x1"}))
	b := h.newPod("h1", "c-b", declaring("b"))
	mustAdd(t, h, a)
	mustAdd(t, h, b)
	h.waitState("a", "old1", "b", "x1", store.LinkWired)
	mustDel(t, h, a)
	h.wire.dropNetns(a.netns)
	a2 := h.newPod("h1", "c-a2", declaring("a", metadata.Link{Peer: "b", IfName: "new1", PeerIfName: "x2"}))
	mustAdd(t, h, a2)
	if rec := h.link("a", "old1", "b", "x1"); rec.ID != "" {
		t.Fatalf("link of the earlier incarnation still recorded: %+v", rec)
	}
	if _, ok := h.wire.get(a2.netns, "old1"); ok {
		t.Fatal("old1 wired into the new incarnation")
	}
	if rec := h.link("a", "new1", "b", "x2"); rec.State != store.LinkWired {
		t.Fatalf("new link %q (%s), want wired", rec.State, rec.Reason)
	}
}

func TestPodRecreatedOnTheSameHostIsRepaired(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h1")
	h.wire.dropNetns(q.netns) // the runtime re-creates the sandbox without DEL
	q2 := h.newPod("h1", "c-pair-2", q.labels)
	mustAdd(t, h, q2)
	rec := h.link("primary-pod", "in1", "pair-pod", "in2")
	if mine, _ := rec.EndsOf("pair-pod"); rec.State != store.LinkWired || mine.ContainerID != "c-pair-2" {
		t.Fatalf("link = %+v, want wired to the new container", rec)
	}
	if err := h.check(p); err != nil {
		t.Errorf("CHECK of the survivor: %v", err)
	}
}

func TestDelRacingAddConvergesToNothing(t *testing.T) {
	h := newHarness(t)
	pl, ql := seedLabels()
	p := h.newPod("h1", "c-primary", pl)
	// The runtime's DEL of p arrives while p's ADD is between recording the
	// pod and wiring its links: the agent serializes the two (pod lock).
	delDone := make(chan error, 1)
	id := store.LinkID("primary-pod", "in1", "pair-pod", "in2")
	h.kv.OnNext(memstore.OpCreate, h.keys.Link("default", id), func() { go func() { delDone <- h.del(p) }() })
	if err := h.add(p); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if err := <-delDone; err != nil {
		t.Fatalf("DEL: %v", err)
	}
	expectNothingLeft(t, h, p)
	// The innocent peer is not hurt by what the race left.
	q := h.newPod("h1", "c-pair", ql)
	mustAdd(t, h, q)
	if err := h.check(q); err != nil {
		t.Fatalf("CHECK of the peer: %v", err)
	}
}

func TestGCReleasesLinksOfPodsWithoutRecords(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h1")
	// A crashed teardown: the pod record is gone, its link still wired.
	if err := h.kv.Delete(h.ctx, h.keys.Pod("default", "primary-pod"), 0); err != nil {
		t.Fatal(err)
	}
	m := h.manager("h1")
	defer m.Close()
	if err := m.GC(h.ctx, nil); err != nil {
		t.Fatalf("GC: %v", err)
	}
	expectNothingLeft(t, h, p, q)
}

func TestEtcdDownAtAddIsTryAgainAndLeavesNothing(t *testing.T) {
	h := newHarness(t)
	pl, _ := seedLabels()
	p := h.newPod("h1", "c-primary", pl)
	h.kv.SetUnavailable(true)
	if err := h.add(p); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ADD with etcd down = %v, want ErrUnavailable", err)
	}
	h.kv.SetUnavailable(false)
	expectNothingLeft(t, h, p)
	if ids := h.manager("h1").localContainers(); len(ids) > 0 {
		t.Errorf("local state left: %v", ids)
	}
}

func TestEtcdDownAtDelStillRemovesTheLinkEnds(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h1")
	h.kv.SetUnavailable(true)
	if err := h.del(p); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("DEL with etcd down = %v, want ErrUnavailable", err)
	}
	if _, ok := h.wire.get(p.netns, "in1"); ok {
		t.Fatal("in1 not removed while etcd was down")
	}
	h.kv.SetUnavailable(false)
	mustDel(t, h, p) // the retry (or GC) finishes the records
	mustDel(t, h, q)
	expectNothingLeft(t, h, p, q)
}

func TestCheckFindsAnEndThatDiffersFromItsRecord(t *testing.T) {
	h := newHarness(t)
	p, _ := addedSeedPair(t, h, "h1", "h1")
	h.wire.readdress(p.netns, "in1", "192.168.2.99/24")
	if err := h.check(p); err == nil || !strings.Contains(err.Error(), "in1") {
		t.Fatalf("CHECK = %v, want an error about in1", err)
	}
}

func TestNonRatchetPodNeverTouchesTheStore(t *testing.T) {
	h := newHarness(t)
	plain := h.newPod("h1", "c-plain", nil)
	m := h.manager("h1")
	// The host's agent loop lists and watches on its own; the pod's ADD and
	// DEL must not read or write a record.
	pod := []memstore.Op{memstore.OpGet, memstore.OpCreate, memstore.OpUpdate, memstore.OpPut, memstore.OpDelete}
	before := h.kv.Ops()
	if err := m.Add(h.ctx, h.request(plain), nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Del(h.ctx, h.request(plain)); err != nil {
		t.Fatal(err)
	}
	after := h.kv.Ops()
	for _, op := range pod {
		if after[op] != before[op] {
			t.Errorf("%d %s calls for a pod that is not a ratchet pod", after[op]-before[op], op)
		}
	}
}

func TestStatusReportsTheStore(t *testing.T) {
	h := newHarness(t)
	m := h.manager("h1")
	defer m.Close()
	if err := m.Status(h.ctx); err != nil {
		t.Fatalf("STATUS with the store up: %v", err)
	}
	h.kv.SetUnavailable(true)
	defer h.kv.SetUnavailable(false)
	if err := m.Status(h.ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("STATUS with the store down = %v, want ErrUnavailable", err)
	}
}

func TestDelWithCorruptStateFindsThePodByItsContainer(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h1")
	m := h.manager("h1")
	if err := os.WriteFile(m.localPath(p.id), []byte("{corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustDel(t, h, p)
	if _, ok := h.wire.get(p.netns, "in1"); ok {
		t.Fatal("in1 left after DEL with a corrupt state file")
	}
	if _, _, err := store.GetPod(h.ctx, h.kv, h.keys, "default", "primary-pod"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pod record after DEL: %v", err)
	}
	mustDel(t, h, q)
	expectNothingLeft(t, h, p, q)
}

func TestGCTearsDownAttachmentsTheRuntimeNoLongerHas(t *testing.T) {
	h := newHarness(t)
	_, q := addedSeedPair(t, h, "h1", "h1")
	m := h.manager("h1")
	defer m.Close()
	if err := m.GC(h.ctx, []types.GCAttachment{{ContainerID: q.id, IfName: "eth0"}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, _, err := store.GetPod(h.ctx, h.kv, h.keys, "default", "primary-pod"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("primary's record after GC: %v", err)
	}
	if _, _, err := store.GetPod(h.ctx, h.kv, h.keys, "default", "pair-pod"); err != nil {
		t.Fatalf("the valid attachment's record after GC: %v", err)
	}
	if rec := h.link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkPending {
		t.Fatalf("link after GC is %q, want pending", rec.State)
	}
}

func TestCrossHostPeerRecreatedElsewhereIsWiredToItsNewHost(t *testing.T) {
	h := newHarness(t)
	p, q := addedSeedPair(t, h, "h1", "h2")
	h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	mustDel(t, h, q)
	q2 := h.newPod("h3", "c-pair-2", q.labels)
	mustAdd(t, h, q2)
	mustDel(t, h, p) // the survivor's re-ADD re-points its end (before the agent)
	p2 := h.newPod("h1", "c-primary-2", p.labels)
	mustAdd(t, h, p2)
	rec := h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	if mine, _ := rec.EndsOf("primary-pod"); mine.Remote != hostAddr("h3") {
		t.Fatalf("primary's end points at %s, want h3's %s", mine.Remote, hostAddr("h3"))
	}
}

func TestPendingLinkFailsAtPairTimeout(t *testing.T) {
	h := newHarness(t)
	h.pairTimeout = "300ms"
	pl, ql := seedLabels()
	p := h.newPod("h1", "c-primary", pl)
	mustAdd(t, h, p)
	rec := h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkFailed)
	if !strings.Contains(rec.Reason, "pair-pod") {
		t.Fatalf("link failed with %q, want the missing peer named", rec.Reason)
	}
	// The agent still wires it when the peer comes later.
	mustAdd(t, h, h.newPod("h1", "c-pair", ql))
	h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
}

// forBothOrders runs fn as two subtests: the primary pod added first
// (named first), then the pair pod (named second).
func forBothOrders(t *testing.T, first, second string, fn func(t *testing.T, primaryFirst bool)) {
	t.Helper()
	t.Run(first, func(t *testing.T) { fn(t, true) })
	t.Run(second, func(t *testing.T) { fn(t, false) })
}

// inOrder is p, q, or q, p.
func inOrder(primaryFirst bool, p, q *pod) []*pod {
	if primaryFirst {
		return []*pod{p, q}
	}
	return []*pod{q, p}
}

// addedSeedPair makes the seed pods on hostP and hostQ and adds both.
func addedSeedPair(t *testing.T, h *harness, hostP, hostQ string) (p, q *pod) {
	t.Helper()
	p, q = h.seedPods(hostP, hostQ)
	mustAdd(t, h, p)
	mustAdd(t, h, q)
	return p, q
}

// A wired link whose peer is deleted waits for it (pending, the reason
// says the peer went away) and, when the peer is not back within
// pairTimeout of leaving, is failed as gone for good; the peer's return
// still wires it.
func TestLinkWhosePeerIsGoneForGoodFails(t *testing.T) {
	h := newHarness(t)
	h.pairTimeout = "1s"
	_, q := addedSeedPair(t, h, "h1", "h2")
	h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	time.Sleep(1100 * time.Millisecond) // both pods older than pairTimeout
	mustDel(t, h, q)
	rec := h.link("primary-pod", "in1", "pair-pod", "in2")
	if rec.State != store.LinkPending || !strings.Contains(rec.Reason, "pair-pod went away") || rec.Gone.IsZero() {
		t.Fatalf("after the peer's DEL the link is %q (%s), gone %v; want pending, the peer named", rec.State, rec.Reason, rec.Gone)
	}
	rec = h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkFailed)
	if !strings.Contains(rec.Reason, "gone for good") || !strings.Contains(rec.Reason, "pair-pod") {
		t.Fatalf("link failed with %q, want the peer named as gone for good", rec.Reason)
	}
	mustAdd(t, h, h.newPod("h2", "c-pair-2", q.labels))
	rec = h.waitState("primary-pod", "in1", "pair-pod", "in2", store.LinkWired)
	if !rec.Gone.IsZero() || rec.Reason != "" {
		t.Fatalf("re-wired link keeps gone %v reason %q", rec.Gone, rec.Reason)
	}
}
