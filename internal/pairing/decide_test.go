package pairing

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

const linkAB = "a.in1--b.in1"

// decideView is pod a's view of its link to b: me is a (container ca on
// h1), the peer b (container cb) is on peerHost, or absent when "".
func decideView(rec *store.LinkRecord, peerHost string) (*view, *store.PodRecord) {
	v := &view{ns: "ns", links: map[string]versioned[store.LinkRecord]{}, pods: map[string]versioned[store.PodRecord]{}}
	me := &store.PodRecord{Namespace: "ns", Name: "a", ContainerID: "ca", Host: "h1", HostAddress: "192.0.2.1"}
	v.pods["a"] = versioned[store.PodRecord]{*me, 1}
	if peerHost != "" {
		addr := "192.0.2.1"
		if peerHost != "h1" {
			addr = "192.0.2.2"
		}
		v.pods["b"] = versioned[store.PodRecord]{store.PodRecord{Namespace: "ns", Name: "b", ContainerID: "cb", Host: peerHost, HostAddress: addr}, 2}
	}
	if rec != nil {
		v.links[rec.ID] = versioned[store.LinkRecord]{*rec, 3}
	}
	return v, me
}

func TestDecideTakesTheRightStep(t *testing.T) {
	now, stale := time.Now(), time.Now().Add(-claimTTL-time.Second)
	base := func(change func(r *store.LinkRecord)) *store.LinkRecord {
		r := &store.LinkRecord{ID: linkAB, Namespace: "ns", State: store.LinkPending,
			A: store.LinkEnd{Pod: "a", IfName: "in1"}, B: store.LinkEnd{Pod: "b", IfName: "in1"}}
		if change != nil {
			change(r)
		}
		return r
	}
	wired := func(r *store.LinkRecord) {
		r.State = store.LinkWired
		r.A.Up, r.A.ContainerID, r.B.Up, r.B.ContainerID = true, "ca", true, "cb"
	}
	vxlanUp := func(r *store.LinkRecord) {
		r.VNI, r.A.Up, r.A.ContainerID, r.A.Remote = 5000, true, "ca", "192.0.2.2"
	}
	for _, tc := range []struct {
		name     string
		rec      *store.LinkRecord
		peerHost string
		role     role
		want     step
	}{
		{"link record gone", nil, "h1", roleAdd, stepDone},
		{"peer absent", base(nil), "", roleAdd, stepPending},
		{"peer absent, agent", base(nil), "", roleAgent, stepPending},
		{"same host, first to see the peer", base(nil), "h1", roleAdd, stepVeth},
		{"same host wired for these containers", base(wired), "h1", roleAdd, stepDone},
		{"same host wired, agent", base(wired), "h1", roleAgent, stepDone},
		{"same host wired for an older peer", base(func(r *store.LinkRecord) { wired(r); r.B.ContainerID = "old" }), "h1", roleAdd, stepVeth},
		{"same host wired but peer end down", base(func(r *store.LinkRecord) { wired(r); r.B.Up = false }), "h1", roleAdd, stepVeth},
		{"live foreign claim", base(func(r *store.LinkRecord) { r.Builder, r.Claimed = "cb", now }), "h1", roleAdd, stepWait},
		{"live foreign claim, agent", base(func(r *store.LinkRecord) { r.Builder, r.Claimed = "cb", now }), "h1", roleAgent, stepWait},
		{"live own claim", base(func(r *store.LinkRecord) { r.Builder, r.Claimed = "ca", now }), "h1", roleAdd, stepVeth},
		{"agent without claim builds", base(nil), "h1", roleAgent, stepVeth},
		{"agent with own live claim", base(func(r *store.LinkRecord) { r.Builder, r.Claimed = "ca", now }), "h1", roleAgent, stepVeth},
		{"stale claim", base(func(r *store.LinkRecord) { r.Builder, r.Claimed = "cb", stale }), "h1", roleAdd, stepVeth},
		{"stale claim, agent", base(func(r *store.LinkRecord) { r.Builder, r.Claimed = "cb", stale }), "h1", roleAgent, stepVeth},
		{"failed for the same incarnations", base(func(r *store.LinkRecord) {
			r.State, r.A.ContainerID, r.B.ContainerID = store.LinkFailed, "ca", "cb"
		}), "h1", roleAdd, stepPending},
		{"failed for an older peer", base(func(r *store.LinkRecord) {
			r.State, r.A.ContainerID, r.B.ContainerID = store.LinkFailed, "ca", "old"
		}), "h1", roleAdd, stepVeth},
		{"cross host, no VNI yet", base(nil), "h2", roleAdd, stepVxlan},
		{"cross host, agent builds too", base(nil), "h2", roleAgent, stepVxlan},
		{"cross host, own end up", base(vxlanUp), "h2", roleAdd, stepDone},
		{"cross host, peer moved", base(func(r *store.LinkRecord) { vxlanUp(r); r.A.Remote = "192.0.2.9" }), "h2", roleAdd, stepVxlan},
		{"cross host, end of an older container", base(func(r *store.LinkRecord) { vxlanUp(r); r.A.ContainerID = "old" }), "h2", roleAdd, stepVxlan},
		{"blocked by another link's end", base(func(r *store.LinkRecord) { r.Blocked = "c.x--b.in1" }), "h1", roleAdd, stepPending},
		{"cross host, own end down", base(func(r *store.LinkRecord) { vxlanUp(r); r.A.Up = false }), "h2", roleAdd, stepVxlan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, me := decideView(tc.rec, tc.peerHost)
			if got := decide(v, me, linkAB, tc.role); got != tc.want {
				t.Errorf("decide = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestViewApplyFoldsWatchEventsOfItsNamespace(t *testing.T) {
	m := testManager(t)
	v := &view{ns: "ns", rev: 5, links: map[string]versioned[store.LinkRecord]{}, pods: map[string]versioned[store.PodRecord]{}}
	linkKey, podKey := m.keys.Link("ns", linkAB), m.keys.Pod("ns", "b")
	link := func(state store.LinkState) []byte {
		b, _ := json.Marshal(store.LinkRecord{ID: linkAB, Namespace: "ns", State: state})
		return b
	}
	pod := func(container string) []byte {
		b, _ := json.Marshal(store.PodRecord{Namespace: "ns", Name: "b", ContainerID: container})
		return b
	}
	put := func(key string, val []byte, ver int64) store.Event {
		return store.Event{Type: store.Put, KV: store.KV{Key: key, Value: val, Version: ver}}
	}
	del := func(key string, ver int64) store.Event {
		return store.Event{Type: store.Delete, KV: store.KV{Key: key, Version: ver}}
	}
	linkIs := func(state store.LinkState, ver int64) func(*testing.T) {
		return func(t *testing.T) {
			l, ok := v.link(linkAB)
			if state == "" && ok {
				t.Errorf("link still in the view: %+v", l)
			} else if state != "" && (!ok || l.val.State != state || l.ver != ver) {
				t.Errorf("link = %+v (present %v), want %s at %d", l, ok, state, ver)
			}
		}
	}
	podIs := func(container string, ver int64) func(*testing.T) {
		return func(t *testing.T) {
			p, ok := v.pod("b")
			if container == "" && ok {
				t.Errorf("pod still in the view: %+v", p)
			} else if container != "" && (!ok || p.val.ContainerID != container || p.ver != ver) {
				t.Errorf("pod = %+v (present %v), want %s at %d", p, ok, container, ver)
			}
		}
	}
	for _, step := range []struct {
		name  string
		ev    store.Event
		about bool
		check func(*testing.T)
	}{
		{"put link", put(linkKey, link(store.LinkPending), 7), true, linkIs(store.LinkPending, 7)},
		{"older link version ignored", put(linkKey, link(store.LinkFailed), 6), true, linkIs(store.LinkPending, 7)},
		{"newer link version taken", put(linkKey, link(store.LinkWired), 9), true, linkIs(store.LinkWired, 9)},
		{"undecodable link ignored", put(linkKey, []byte("{"), 10), true, linkIs(store.LinkWired, 9)},
		{"delete link", del(linkKey, 11), true, linkIs("", 0)},
		{"put pod", put(podKey, pod("cb"), 12), true, podIs("cb", 12)},
		{"older pod version ignored", put(podKey, pod("old"), 8), true, podIs("cb", 12)},
		{"newer pod incarnation taken", put(podKey, pod("cb2"), 13), true, podIs("cb2", 13)},
		{"delete pod", del(podKey, 14), true, podIs("", 0)},
		{"other namespace's link", put(m.keys.Link("other", linkAB), link(store.LinkWired), 15), false, linkIs("", 0)},
		{"namespace with our name as prefix", put(m.keys.Pod("ns2", "b"), pod("x"), 16), false, podIs("", 0)},
		{"other kind of key", put(m.keys.Agent("b"), []byte("{}"), 17), false, podIs("", 0)},
	} {
		t.Run(step.name, func(t *testing.T) {
			if got := v.apply(m, step.ev); got != step.about {
				t.Errorf("apply = %v, want %v", got, step.about)
			}
			step.check(t)
			if v.rev < step.ev.KV.Version {
				t.Errorf("rev %d is behind the event's %d", v.rev, step.ev.KV.Version)
			}
		})
	}
	if v.rev != 17 {
		t.Errorf("view rev = %d, want the last event's 17", v.rev)
	}
}
