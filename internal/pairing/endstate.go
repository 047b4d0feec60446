package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// endStates remembers, per interface (netns and name), the admin state and
// impairment this agent last put on it, so that a reconcile pass touches
// the kernel only when a record asks for something else. An agent that
// starts with none applies everything once (both operations replace what
// is there). A rebuilt interface is forgotten (forget).
type endStates struct {
	mu sync.Mutex
	m  map[string]endState
	// locks serialize the work on one interface (*sync.Mutex by key).
	locks sync.Map
}

// lock takes the lock of one interface.
func (e *endStates) lock(netns, ifname string) func() {
	mu, _ := e.locks.LoadOrStore(endKey(netns, ifname), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// endState is what is on one interface.
type endState struct {
	down  bool
	netem string // the Spec as JSON, "" for none
}

func newEndStates() *endStates { return &endStates{m: map[string]endState{}} }

func endKey(netns, ifname string) string { return netns + "\x00" + ifname }

func (e *endStates) get(netns, ifname string) (endState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.m[endKey(netns, ifname)]
	return s, ok
}

func (e *endStates) set(netns, ifname string, s endState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[endKey(netns, ifname)] = s
}

// forget drops what is known of an interface (built anew, or removed).
func (e *endStates) forget(netns, ifname string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, endKey(netns, ifname))
}

// forgetNetns drops every interface of a netns (its pod is gone).
func (e *endStates) forgetNetns(netns string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.m {
		if strings.HasPrefix(k, netns+"\x00") {
			delete(e.m, k)
		}
	}
	e.locks.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), netns+"\x00") {
			e.locks.Delete(k)
		}
		return true
	})
}

// wantedState is what the record asks of the end mine of link rec, whose
// other end is theirs: down when the link is set down, or, for a vxlan end,
// while the other end is not wired (its pod is gone or being re-created:
// the end is parked, name and addresses kept), so that a router sees the
// link go down and up, never the interface vanish. A veth end whose other
// end is parked has lost carrier already (its peer is down).
func wantedState(rec *store.LinkRecord, mine, theirs *store.LinkEnd) endState {
	s := endState{down: rec.IsDown() || rec.VNI != 0 && !theirs.Up}
	if mine.Netem != nil && !mine.Netem.IsZero() {
		b, _ := json.Marshal(mine.Netem)
		s.netem = string(b)
	}
	return s
}

// ensureEndStates puts on pod p's wired ends of links ids the admin state
// and impairment their records ask for, and records on each link how its
// impairment is applied. Failures are logged and recorded on the end
// ("not applied: …"); they never fail the pod's ADD.
func (m *Manager) ensureEndStates(ctx context.Context, kv store.Store, v *view, p *store.PodRecord, ids []string) {
	_ = parallelCtx(ctx, len(ids), func(ctx context.Context, i int) error {
		m.ensureEndState(ctx, kv, v, p, ids[i])
		return nil
	})
}

func (m *Manager) ensureEndState(ctx context.Context, kv store.Store, v *view, p *store.PodRecord, id string) {
	l, ok := v.link(id)
	if !ok {
		return
	}
	mine, theirs := l.val.EndsOf(p.Name)
	m.ensureOneEnd(ctx, kv, v, &l.val, p, mine)
	// A same-host veth is built whole by one pod's operation: its other
	// end is set there too, so that both are in force when it returns.
	if peer, ok := v.pod(theirs.Pod); ok && l.val.VNI == 0 && peer.val.Host == p.Host {
		m.ensureOneEnd(ctx, kv, v, &l.val, &peer.val, theirs)
	}
}

// ensureOneEnd is ensureEndState for the end of pod p.
func (m *Manager) ensureOneEnd(ctx context.Context, kv store.Store, v *view, rec *store.LinkRecord, p *store.PodRecord, end *store.LinkEnd) {
	if !end.Up || end.ContainerID != p.ContainerID {
		return
	}
	unlock := m.ends.lock(p.Netns, end.IfName)
	defer unlock()
	_, other := rec.EndsOf(p.Name)
	want := wantedState(rec, end, other)
	got, known := m.ends.get(p.Netns, end.IfName)
	if known && got == want {
		return
	}
	log := m.log.With("link", rec.ID, "pod", podKey(p.Namespace, p.Name), "endIfname", end.IfName)
	if !known || got.down != want.down {
		if err := m.wire.SetAdmin(ctx, p.Netns, end.IfName, rec.ID, !want.down); err != nil {
			if !errors.Is(err, wiring.ErrNotFound) && !errors.Is(err, wiring.ErrNetnsGone) {
				log.Warn("set the link's admin state", "down", want.down, "err", err)
			}
			return // a missing end is rebuilt by the loop
		}
	}
	applied := end.Applied
	var err error
	if !known || got.netem != want.netem {
		applied, err = m.wire.Impair(ctx, p.Netns, end.IfName, end.Netem)
	}
	if err != nil {
		log.Warn("impair the link end", "err", err)
		applied = "not applied: " + err.Error()
		m.ends.set(p.Netns, end.IfName, endState{down: want.down, netem: "?"}) // impairment unknown: try again
	} else {
		m.ends.set(p.Netns, end.IfName, want)
		log.Debug("link end state", "down", want.down, "netem", want.netem, "applied", applied)
	}
	if applied == end.Applied {
		return
	}
	out, ver, uerr := m.updateLink(ctx, kv, p.Namespace, rec.ID, func(r *store.LinkRecord) bool {
		e, _ := r.EndsOf(p.Name)
		if e.ContainerID != p.ContainerID || e.Applied == applied {
			return false
		}
		e.Applied = applied
		return true
	})
	if uerr == nil {
		v.setLink(out, ver)
	} else if !errors.Is(uerr, store.ErrNotFound) {
		log.Warn("record how the impairment is applied", "err", uerr)
	}
}
