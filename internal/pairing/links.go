package pairing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// maxCASRetries bounds the read-modify-write loops on one record.
const maxCASRetries = 20

// workers bounds the links one process sets up at once: enough to overlap
// etcd round trips, few enough not to crowd the kernel's rtnl lock.
const workers = 8

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

// wanted is a link record a pod wants to exist, and whether the pod
// declares it (a declaring pod's description wins).
type wanted struct {
	rec      store.LinkRecord
	declared bool
}

// wantedLinks lists the links the pod declares, expects, or finds declared
// towards it in other pods' announced records, once each.
func (m *Manager) wantedLinks(ctx context.Context, kv store.Store, pod *metadata.Pod) ([]wanted, error) {
	seen := map[string]bool{}
	var out []wanted
	add := func(l metadata.Link, declared bool) {
		w := wanted{rec: newLinkRecord(pod.Namespace, pod.Name, l, declared), declared: declared}
		if !seen[w.rec.ID] {
			seen[w.rec.ID] = true
			out = append(out, w)
		}
	}
	for _, l := range pod.Links {
		add(l, true)
	}
	// The peer's own declaration describes a link better than this pod's
	// expectation of it, so it goes first.
	towards, err := m.announcedTowards(ctx, kv, pod)
	if err != nil {
		return nil, err
	}
	for _, l := range towards {
		add(l, false)
	}
	for _, l := range pod.Expects {
		add(l, false)
	}
	return out, nil
}

// announcedTowards returns, seen from pod, the links that the announced
// records of the other pods of its namespace declare towards it. Records
// that do not parse are skipped: they are their own pods' errors.
func (m *Manager) announcedTowards(ctx context.Context, kv store.Store, pod *metadata.Pod) ([]metadata.Link, error) {
	entries, _, err := store.ListJSON[map[string]string](ctx, kv, m.keys.Announces(pod.Namespace))
	if err != nil {
		return nil, fmt.Errorf("list announced records of %s: %w", pod.Namespace, err)
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
	return out, nil
}

// ensureLinks makes sure every wanted link has a record, creating the
// missing ones in parallel; a declaring pod also corrects a record that was
// created from the peer's expectation. The view is updated.
func (m *Manager) ensureLinks(ctx context.Context, kv store.Store, v *view, want []wanted) error {
	return parallelCtx(ctx, len(want), func(ctx context.Context, i int) error {
		w := want[i]
		cur, ok := v.link(w.rec.ID)
		if !ok {
			kvr, err := store.CreateJSON(ctx, kv, m.keys.Link(v.ns, w.rec.ID), w.rec, 0)
			if err == nil {
				v.setLink(w.rec, kvr.Version)
				return nil
			}
			if !errors.Is(err, store.ErrExists) {
				return wrapLink(w.rec.ID, "create", err)
			}
		} else if !w.declared || sameDescription(&cur.val, &w.rec) {
			return nil
		}
		rec, ver, err := m.updateLink(ctx, kv, v.ns, w.rec.ID, func(r *store.LinkRecord) bool {
			if !w.declared || sameDescription(r, &w.rec) {
				return false
			}
			r.Declarer, r.A.IP, r.B.IP, r.MTU = w.rec.Declarer, w.rec.A.IP, w.rec.B.IP, w.rec.MTU
			// Ends built from the old description are rebuilt.
			r.A.Up, r.B.Up, r.State, r.Reason = false, false, store.LinkPending, ""
			return true
		})
		if err != nil {
			return wrapLink(w.rec.ID, "update", err)
		}
		v.setLink(rec, ver)
		return nil
	})
}

func sameDescription(a, b *store.LinkRecord) bool {
	return a.Declarer == b.Declarer && a.A.IP == b.A.IP && a.B.IP == b.B.IP && a.MTU == b.MTU
}

func wrapLink(id, op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s record of link %s: %w", op, id, err)
}

// updateLink applies change to the current record of a link with a CAS
// loop, returning the record and its new version. change returns false to
// leave the record as it is. A missing record is store.ErrNotFound.
func (m *Manager) updateLink(ctx context.Context, kv store.Store, ns, id string, change func(*store.LinkRecord) bool) (store.LinkRecord, int64, error) {
	key := m.keys.Link(ns, id)
	for range maxCASRetries {
		rec, ver, err := store.GetLink(ctx, kv, m.keys, ns, id)
		if err != nil {
			return rec, 0, err
		}
		if !change(&rec) {
			return rec, ver, nil
		}
		rec.Updated = time.Now().UTC()
		kvr, err := store.UpdateJSON(ctx, kv, key, rec, ver)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return rec, kvr.Version, err
	}
	return store.LinkRecord{}, 0, fmt.Errorf("link %s: too much contention on its record", id)
}

// parallel runs fn(0..n-1) on at most `workers` goroutines and returns the
// errors joined.
func parallel(n int, fn func(i int) error) error {
	return parallelCtx(context.Background(), n, func(_ context.Context, i int) error { return fn(i) })
}

// parallelCtx is parallel with a context that is cancelled, and no further
// fn started, as soon as one fn finds etcd unavailable: every other call
// would only wait out the same timeout.
func parallelCtx(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, workers)
	)
	for i := range n {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				if errors.Is(err, store.ErrUnavailable) {
					cancel()
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
