package pairing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// maxCASRetries bounds the read-modify-write loops on one record.
const maxCASRetries = 20

// newLinkRecord describes link l of pod owner (declared when declared is
// true) as a pending record. End A is the end whose (pod, ifname) sorts
// first, so both pods build the same record.
func newLinkRecord(namespace, owner string, l metadata.Link, declared bool) store.LinkRecord {
	mine := store.LinkEnd{Pod: owner, IfName: l.IfName, IP: l.IP}
	theirs := store.LinkEnd{Pod: l.Peer, IfName: l.PeerIfName, IP: l.PeerIP}
	a, b := mine, theirs
	if endLess(theirs, mine) {
		a, b = theirs, mine
	}
	declarer := l.Peer
	if declared {
		declarer = owner
	}
	return store.LinkRecord{
		ID:        store.LinkID(owner, l.IfName, l.Peer, l.PeerIfName),
		Namespace: namespace, A: a, B: b, MTU: l.MTU,
		State: store.LinkPending, Updated: time.Now().UTC(), Declarer: declarer,
	}
}

func endLess(x, y store.LinkEnd) bool {
	if x.Pod != y.Pod {
		return x.Pod < y.Pod
	}
	return x.IfName < y.IfName
}

// ends returns the end of rec that belongs to pod and the other one.
func ends(rec *store.LinkRecord, pod string) (mine, peer *store.LinkEnd) {
	if rec.A.Pod == pod {
		return &rec.A, &rec.B
	}
	return &rec.B, &rec.A
}

// involves reports whether rec has an end on pod.
func involves(rec *store.LinkRecord, pod string) bool {
	return rec.A.Pod == pod || rec.B.Pod == pod
}

// declareLinks makes sure a record exists for every link the pod declares or
// expects, and for every link that another pod's announced record declares
// towards it. A declared link's description replaces an expected one's
// while the link is not wired. It returns the IDs of all the pod's links:
// these and those other pods recorded towards it.
func (m *Manager) declareLinks(ctx context.Context, kv store.Store, pod *metadata.Pod) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	add := func(l metadata.Link, declared bool) error {
		want := newLinkRecord(pod.Namespace, pod.Name, l, declared)
		if seen[want.ID] {
			return nil
		}
		seen[want.ID] = true
		ids = append(ids, want.ID)
		return m.ensureLink(ctx, kv, want, declared)
	}
	for _, l := range pod.Links {
		if err := add(l, true); err != nil {
			return nil, err
		}
	}
	for _, l := range pod.Expects {
		if err := add(l, false); err != nil {
			return nil, err
		}
	}
	for _, l := range m.announcedTowards(ctx, kv, pod) {
		if err := add(l, false); err != nil {
			return nil, err
		}
	}
	links, _, err := store.ListLinks(ctx, kv, m.keys, pod.Namespace)
	if err != nil {
		return nil, fmt.Errorf("list links of %s: %w", pod.Namespace, err)
	}
	for _, e := range links {
		if involves(&e.Value, pod.Name) && !seen[e.Value.ID] {
			seen[e.Value.ID] = true
			ids = append(ids, e.Value.ID)
		}
	}
	return ids, nil
}

// announcedTowards returns, seen from pod, the links that the announced
// records of the other pods of its namespace declare towards it. Records
// that do not parse are skipped: they are their own pods' errors.
func (m *Manager) announcedTowards(ctx context.Context, kv store.Store, pod *metadata.Pod) []metadata.Link {
	entries, _, err := store.ListJSON[map[string]string](ctx, kv, m.keys.Announces(pod.Namespace))
	if err != nil {
		m.log.Warn("list announced records", "namespace", pod.Namespace, "err", err)
		return nil
	}
	var out []metadata.Link
	for _, e := range entries {
		other, err := metadata.Parse(e.Value, "")
		if err != nil || other == nil || other.Name == pod.Name {
			continue
		}
		for _, l := range other.Links {
			if l.Peer == pod.Name {
				out = append(out, metadata.Link{Peer: other.Name, IfName: l.PeerIfName, IP: l.PeerIP,
					PeerIfName: l.IfName, PeerIP: l.IP, MTU: l.MTU})
			}
		}
	}
	return out
}

// ensureLink creates the record of a link if it is missing; a declaring pod
// also corrects an existing record that was created from the peer's
// expectation.
func (m *Manager) ensureLink(ctx context.Context, kv store.Store, want store.LinkRecord, declared bool) error {
	key := m.keys.Link(want.Namespace, want.ID)
	for range maxCASRetries {
		rec, ver, err := store.GetLink(ctx, kv, m.keys, want.Namespace, want.ID)
		if errors.Is(err, store.ErrNotFound) {
			_, err = store.CreateJSON(ctx, kv, key, want, 0)
			if errors.Is(err, store.ErrExists) {
				continue
			}
			return wrapLink(want.ID, "create", err)
		}
		if err != nil {
			return wrapLink(want.ID, "read", err)
		}
		if !declared || rec.Declarer == want.Declarer && rec.A.IP == want.A.IP && rec.B.IP == want.B.IP && rec.MTU == want.MTU {
			return nil
		}
		rec.Declarer, rec.A.IP, rec.B.IP, rec.MTU = want.Declarer, want.A.IP, want.B.IP, want.MTU
		_, err = store.UpdateJSON(ctx, kv, key, rec, ver)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		return wrapLink(want.ID, "update", err)
	}
	return fmt.Errorf("link %s: too much contention on its record", want.ID)
}

func wrapLink(id, op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s record of link %s: %w", op, id, err)
}

// updateLink applies change to the current record of a link with a CAS
// loop. change returns false to leave the record as it is. A missing record
// is store.ErrNotFound.
func (m *Manager) updateLink(ctx context.Context, kv store.Store, ns, id string, change func(*store.LinkRecord) bool) (store.LinkRecord, error) {
	key := m.keys.Link(ns, id)
	for range maxCASRetries {
		rec, ver, err := store.GetLink(ctx, kv, m.keys, ns, id)
		if err != nil {
			return rec, err
		}
		if !change(&rec) {
			return rec, nil
		}
		rec.Updated = time.Now().UTC()
		_, err = store.UpdateJSON(ctx, kv, key, rec, ver)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return rec, err
	}
	return store.LinkRecord{}, fmt.Errorf("link %s: too much contention on its record", id)
}
