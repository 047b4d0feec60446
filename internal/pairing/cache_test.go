package pairing

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/memstore"
)

func kvJSON(t *testing.T, key string, v any, ver int64) store.KV {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return store.KV{Key: key, Value: b, Version: ver}
}

// A list and the watch after it overlap (the watch starts at the oldest of
// three lists' revisions): replayed events older than what the copy holds
// change nothing, newer ones apply, and the indexes follow.
func TestCacheFoldsAListAndTheWatchAfterIt(t *testing.T) {
	keys := store.Keys{Prefix: "/ratchet"}
	c := newCache()
	link := store.LinkRecord{ID: store.LinkID("a", "e1", "b", "e2"), Namespace: "ns", A: store.LinkEnd{Pod: "a", IfName: "e1"}, B: store.LinkEnd{Pod: "b", IfName: "e2"}}
	annB := declaring("b", metadata.Link{Peer: "a", IfName: "x1", PeerIfName: "x2"})
	c.reset(keys, []store.KV{
		kvJSON(t, keys.Pod("ns", "a"), store.PodRecord{Namespace: "ns", Name: "a", Host: "h1"}, 5),
		kvJSON(t, keys.Link("ns", link.ID), link, 7),
		kvJSON(t, keys.Announce("ns", "b"), annB, 6),
		{Key: keys.Link("ns", "garbage"), Value: []byte("{"), Version: 6},
	}, 5)
	if !c.isLive() || c.rev != 5 {
		t.Fatalf("live %v rev %d, want live at 5", c.isLive(), c.rev)
	}
	// Replayed: the link's put at 6 (older than the listed 7) and a delete
	// of it at 7 (not newer either) change nothing.
	c.apply(keys, store.Event{Type: store.Put, KV: kvJSON(t, keys.Link("ns", link.ID), store.LinkRecord{ID: link.ID}, 6)})
	c.apply(keys, store.Event{Type: store.Delete, KV: store.KV{Key: keys.Link("ns", link.ID), Version: 7}})
	if v := c.view("ns", []string{"a"}, nil); len(v.links) != 1 || v.links[link.ID].val.B.Pod != "b" {
		t.Fatalf("links of a after replay = %v, want the listed link", v.links)
	}
	if got := c.towards("ns", "a"); len(got) != 1 || got[0].Peer != "b" || got[0].IfName != "x2" {
		t.Fatalf("towards a = %+v, want b's link seen from a", got)
	}
	// Newer: the link deleted at 8, b's announcement changed at 9.
	c.apply(keys, store.Event{Type: store.Delete, KV: store.KV{Key: keys.Link("ns", link.ID), Version: 8}})
	c.apply(keys, store.Event{Type: store.Put, KV: kvJSON(t, keys.Announce("ns", "b"), declaring("b"), 9)})
	if v := c.view("ns", []string{"a", "b"}, nil); len(v.links) != 0 {
		t.Fatalf("links after delete = %v", v.links)
	}
	if got := c.towards("ns", "a"); len(got) != 0 {
		t.Fatalf("towards a after b's change = %+v, want none", got)
	}
	if _, ok := c.announcedLabels("ns", "b"); !ok {
		t.Fatal("b's announced record missing")
	}
	if _, ok := c.announcedLabels("ns", "zz"); ok {
		t.Fatal("an absent record found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c.await(ctx, 10) {
		t.Fatal("await(10) returned true at revision 9")
	}
	c.setLive(false)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if c.await(ctx2, 1) {
		t.Fatal("await on a copy that is not live returned true")
	}
}

// The agent's own write reaches the copy before its watch event, unless
// the copy already folded that revision (a later change or the delete may
// be in it); the copy's revision does not move.
func TestCacheTakesTheAgentsOwnWriteAheadOfItsEvent(t *testing.T) {
	keys := store.Keys{Prefix: "/ratchet"}
	c := newCache()
	link := store.LinkRecord{ID: store.LinkID("a", "e1", "b", "e2"), Namespace: "ns", A: store.LinkEnd{Pod: "a", IfName: "e1"}, B: store.LinkEnd{Pod: "b", IfName: "e2"}}
	c.reset(keys, []store.KV{kvJSON(t, keys.Link("ns", link.ID), link, 3)}, 3)
	newer := link
	newer.A.Remote = "192.0.2.3"
	c.offerLink("ns", newer, 5)
	if l, _ := c.link("ns", link.ID); l.ver != 5 || l.val.A.Remote != "192.0.2.3" || c.rev != 3 {
		t.Fatalf("after the offer at 5: %+v at %d, copy at %d; want the offered record, copy still at 3", l.val.A, l.ver, c.rev)
	}
	// Its own event, then a delete at 6: the offer does not come back.
	c.apply(keys, store.Event{Type: store.Put, KV: kvJSON(t, keys.Link("ns", link.ID), newer, 5)})
	c.apply(keys, store.Event{Type: store.Delete, KV: store.KV{Key: keys.Link("ns", link.ID), Version: 6}})
	c.offerLink("ns", newer, 5)
	if l, ok := c.link("ns", link.ID); ok {
		t.Fatalf("an offer older than the copy brought back a deleted link: %+v", l)
	}
	if v := c.view("ns", []string{"a"}, nil); len(v.links) != 0 {
		t.Fatalf("a's links = %v, want none", v.links)
	}
	// A view cut from the copy passes its writes on.
	v := c.view("ns", []string{"a"}, nil)
	v.setLink(link, 9)
	if l, ok := c.link("ns", link.ID); !ok || l.ver != 9 {
		t.Fatalf("the view's write did not reach the copy: %+v %v", l, ok)
	}
}

// livePods builds a harness namespace of n other pods (on another host),
// each announced and with a link to the next, straight in the store.
func seedCrowd(t *testing.T, h *harness, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		name, next := fmt.Sprintf("other-%d", i), fmt.Sprintf("other-%d", (i+1)%n)
		labels := declaring(name, metadata.Link{Peer: next, IfName: "o1", PeerIfName: "o2"})
		if _, err := store.CreateJSON(ctx, h.kv, h.keys.Announce("default", name), labels, 0); err != nil {
			t.Fatal(err)
		}
		rec := store.PodRecord{Namespace: "default", Name: name, ContainerID: "c-" + name, Host: "h3", HostAddress: hostAddr("h3")}
		if _, err := store.CreateJSON(ctx, h.kv, h.keys.Pod("default", name), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLive waits until host's agent copy is live.
func waitLive(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !m.cache.await(ctx, 0) {
		t.Fatal("the agent's watched copy never went live")
	}
}

// With the agent's loop running, a pair's ADDs and DELs read no list of
// the namespace, however many pods it holds: their cost does not grow with
// it.
func TestAddAndDelDoNotListTheNamespace(t *testing.T) {
	h := newHarness(t)
	seedCrowd(t, h, 300)
	waitLive(t, h.manager("h1"))
	before := h.kv.Ops()[memstore.OpList]
	p, q := addedSeedPair(t, h, "h1", "h1")
	if rec := h.link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkWired {
		t.Fatalf("link %q (%s), want wired", rec.State, rec.Reason)
	}
	mustDel(t, h, p)
	mustDel(t, h, q)
	if got := h.kv.Ops()[memstore.OpList] - before; got != 0 {
		t.Fatalf("two ADDs and two DELs listed %d directories, want 0", got)
	}
	for _, k := range h.records() {
		if strings.Contains(k, "primary-pod") || strings.Contains(k, "pair-pod") {
			t.Errorf("left behind: %s", k)
		}
	}
}

// The crowd's announced links towards a pod are found through the copy's
// index: a pod that another pod's announced record declares a link to
// gets it at ADD.
func TestAnnouncedLinksTowardsAPodComeFromTheCopy(t *testing.T) {
	h := newHarness(t)
	seedCrowd(t, h, 50)
	// other-49 declares o1 → other-0.o2; other-0 is added on h1 now.
	p := h.newPod("h1", "c-other-0", declaring("other-0"))
	waitLive(t, h.manager("h1"))
	mustAdd(t, h, p)
	rec := h.link("other-49", "o1", "other-0", "o2")
	if rec.ID == "" {
		t.Fatal("the link other-49 declares towards other-0 has no record")
	}
	if mine, _ := rec.EndsOf("other-0"); !mine.Up {
		t.Fatalf("other-0's end of %s is not up: %+v", rec.ID, rec)
	}
}

// A pod with no announced record is told so from the copy while etcd is
// down (other pods never wait for etcd); an announced pod still gets
// etcd's unavailability at ADD (code 11).
func TestPodsWithoutRecordsDoNotNeedEtcd(t *testing.T) {
	h := newHarness(t)
	m := h.managerWith("h1", nil)
	h.startAgent("h1", m)
	if _, err := store.CreateJSON(context.Background(), h.kv, h.keys.Announce("default", "announced"), declaring("announced"), 0); err != nil {
		t.Fatal(err)
	}
	waitLive(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ok := m.cache.announcedLabels("default", "announced"); !ok; _, ok = m.cache.announcedLabels("default", "announced") {
		if ctx.Err() != nil {
			t.Fatal("the copy did not fold the announcement in")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.kv.SetUnavailable(true)
	defer h.kv.SetUnavailable(false)
	req := func(name string) *Request {
		r := h.request(h.newPod("h1", "c-"+name, nil))
		r.Args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + name
		return r
	}
	start := time.Now()
	is, err := m.IsRatchetPod(ctx, req("plain"))
	if err != nil || is {
		t.Fatalf("plain pod with etcd down: ratchet %v, err %v; want false, nil", is, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the answer took %s: it waited for etcd", took)
	}
	is, err = m.IsRatchetPod(ctx, req("announced"))
	if err != nil || !is {
		t.Fatalf("announced pod: ratchet %v, err %v; want true, nil", is, err)
	}
}
