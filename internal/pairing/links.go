package pairing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// workers bounds the links one process sets up at once: enough to overlap
// etcd round trips, few enough not to crowd the kernel's rtnl lock.
const workers = 8

// newLinkRecord describes link l of pod owner (declared when declared is
// true) as a pending record. End A is the end whose (pod, ifname) sorts
// first, so both pods build the same record.
func newLinkRecord(namespace, owner string, l metadata.Link, declared bool) store.LinkRecord {
	mine := store.LinkEnd{Pod: owner, IfName: l.IfName, IP: l.IP, Netem: l.EndNetem(true)}
	theirs := store.LinkEnd{Pod: l.Peer, IfName: l.PeerIfName, IP: l.PeerIP, Netem: l.EndNetem(false)}
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

// wanted is a link record a pod wants to exist, and whether the pod
// declares it (a declaring pod's description wins).
type wanted struct {
	rec      store.LinkRecord
	declared bool
}

// wantedLinks lists the links the pod declares, expects, or finds declared
// towards it in other pods' announced records, once each.
// fromCache reads them from the watched copy.
func (m *Manager) wantedLinks(ctx context.Context, kv store.Store, pod *metadata.Pod, fromCache bool) ([]wanted, error) {
	if fromCache {
		return wantedFrom(pod, m.cache.towards(pod.Namespace, pod.Name)), nil
	}
	announced, err := m.listAnnounced(ctx, kv, pod.Namespace)
	if err != nil {
		return nil, err
	}
	return wantedFrom(pod, announcedTowards(pod, announced)), nil
}

// listAnnounced lists the announced records of a namespace.
func (m *Manager) listAnnounced(ctx context.Context, kv store.Store, ns string) ([]store.Entry[map[string]string], error) {
	entries, _, err := store.ListJSON[map[string]string](ctx, kv, m.keys.Announces(ns))
	if err != nil {
		return nil, fmt.Errorf("list announced records of %s: %w", ns, err)
	}
	return entries, nil
}

// wantedFrom is wantedLinks with the links the other pods' announced
// records declare towards the pod given.
func wantedFrom(pod *metadata.Pod, towards []metadata.Link) []wanted {
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
	for _, l := range towards {
		add(l, false)
	}
	for _, l := range pod.Expects {
		add(l, false)
	}
	return out
}

// announcedTowards returns, seen from pod, the links that the announced
// records of the other pods of its namespace declare towards it. Records
// that do not parse are skipped: they are their own pods' errors.
func announcedTowards(pod *metadata.Pod, entries []store.Entry[map[string]string]) []metadata.Link {
	others := make([]*metadata.Pod, 0, len(entries))
	for _, e := range entries {
		if other, err := metadata.Parse(e.Value, ""); err == nil {
			others = append(others, other)
		}
	}
	return linksTowards(pod.Name, others)
}

// linksTowards returns, seen from pod, the links that the other pods (nil
// entries are skipped) declare towards it.
func linksTowards(pod string, others []*metadata.Pod) []metadata.Link {
	var out []metadata.Link
	for _, other := range others {
		if other == nil || other.Name == pod {
			continue
		}
		for _, l := range other.Links {
			if l.Peer == pod {
				out = append(out, l.Reversed(other.Name))
			}
		}
	}
	return out
}

// ensureLinks makes sure every wanted link has a record whose ends it
// owns, creating the missing ones in parallel; a declaring pod also
// corrects a record that was created from the peer's expectation. The view
// is updated. A conflict on a link this pod declares is its error; one on a
// link another pod declares towards it is recorded on that link.
func (m *Manager) ensureLinks(ctx context.Context, kv store.Store, v *view, want []wanted) error {
	return parallelCtx(ctx, len(want), func(ctx context.Context, i int) error {
		err := m.ensureLink(ctx, kv, v, want[i])
		if err != nil && !want[i].declared && errors.Is(err, ErrConflict) {
			m.log.Warn("link towards this pod conflicts; recorded as failed", "link", want[i].rec.ID, "err", err)
			return nil
		}
		return err
	})
}

// ensureLink creates or corrects the record of one wanted link.
func (m *Manager) ensureLink(ctx context.Context, kv store.Store, v *view, w wanted) error {
	cur, ok := v.link(w.rec.ID)
	if !ok || cur.val.Blocked != "" || w.declared && !cur.val.EndsClaimed {
		if err := m.claim(ctx, kv, v, w, ok); err != nil {
			return err
		}
		if cur, ok = v.link(w.rec.ID); !ok {
			return nil // deleted meanwhile with its pods
		}
	}
	if !w.declared || sameDescription(&cur.val, &w.rec) && (cur.val.NetemSet || sameNetem(&cur.val, &w.rec)) {
		return nil
	}
	if sameDescription(&cur.val, &w.rec) {
		return m.redeclareNetem(ctx, kv, v, w)
	}
	if cur.val.Declarer != w.rec.Declarer && m.podDeclares(ctx, kv, v, cur.val.Declarer, cur.val.ID) {
		if sameAddresses(&cur.val, &w.rec) {
			return nil // both pods declare it alike: no conflict
		}
		return fmt.Errorf("link %s: %w: declared differently by pods %s and %s", w.rec.ID, ErrConflict,
			cur.val.Declarer, w.rec.Declarer)
	}
	rec, ver, err := store.Update(ctx, kv, m.keys.Link(v.ns, w.rec.ID), func(r *store.LinkRecord) error {
		if sameDescription(r, &w.rec) {
			return store.ErrUnchanged
		}
		r.Declarer, r.A.IP, r.B.IP, r.MTU = w.rec.Declarer, w.rec.A.IP, w.rec.B.IP, w.rec.MTU
		if !r.NetemSet {
			r.A.Netem, r.B.Netem = w.rec.A.Netem, w.rec.B.Netem
		}
		// Ends built from the old description are rebuilt.
		r.A.Up, r.B.Up, r.State, r.Reason, r.Updated = false, false, store.LinkPending, "", time.Now().UTC()
		return nil
	})
	if err != nil {
		return wrapLink(w.rec.ID, "update", err)
	}
	v.setLink(rec, ver)
	return nil
}

// claim settles who owns the ends of a wanted link and creates or updates
// its record. The declarer claims both ends; the peer's side only checks
// them. When an end belongs to another link, a declarer's ADD fails and
// changes nothing; a record made from the peer's side is recorded blocked,
// failed with the reason, and the conflict returned.
func (m *Manager) claim(ctx context.Context, kv store.Store, v *view, w wanted, exists bool) error {
	conflict, err := m.claimEnds(ctx, kv, v, &w.rec, w.declared)
	if err != nil {
		return wrapLink(w.rec.ID, "claim the ends of", err)
	}
	if conflict != nil && w.declared {
		return fmt.Errorf("link %s: %w: %w", w.rec.ID, ErrConflict, conflict) // nothing changed
	}
	rec := w.rec
	rec.EndsClaimed = w.declared
	if conflict != nil {
		rec.Blocked, rec.State, rec.Reason = conflict.Owner, store.LinkFailed, conflict.Error()
	}
	if !exists {
		kvr, cerr := store.CreateJSON(ctx, kv, m.keys.Link(v.ns, w.rec.ID), rec, 0)
		if cerr == nil {
			v.setLink(rec, kvr.Version)
		} else if !errors.Is(cerr, store.ErrExists) { // else: the peer created it meanwhile
			return wrapLink(w.rec.ID, "create", cerr)
		}
	}
	if exists || !inView(v, w.rec.ID) {
		if err := m.markClaim(ctx, kv, v, rec); err != nil {
			return err
		}
	}
	if conflict != nil {
		return fmt.Errorf("link %s: %w: %w", w.rec.ID, ErrConflict, conflict)
	}
	return nil
}

// inView reports whether the view holds link id.
func inView(v *view, id string) bool {
	_, found := v.link(id)
	return found
}

// markClaim records on an existing link what claim found: blocked by
// another link, or free (unblocked, pending), and whether its declarer
// claimed the ends.
func (m *Manager) markClaim(ctx context.Context, kv store.Store, v *view, rec store.LinkRecord) error {
	out, ver, err := store.Update(ctx, kv, m.keys.Link(v.ns, rec.ID), func(r *store.LinkRecord) error {
		switch {
		case rec.Blocked != "":
			r.Blocked, r.State, r.Reason = rec.Blocked, rec.State, rec.Reason
		case r.Blocked != "":
			r.Blocked, r.State, r.Reason = "", store.LinkPending, ""
		case r.EndsClaimed || !rec.EndsClaimed:
			return store.ErrUnchanged
		}
		r.EndsClaimed = r.EndsClaimed || rec.EndsClaimed
		r.Updated = time.Now().UTC()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return wrapLink(rec.ID, "update", err)
	}
	v.setLink(out, ver)
	return nil
}

// claimEnds claims both ends of rec (take), or checks that no other live
// link holds them. An end held by a link whose record is there but that no
// current record declares any more (its pods left) is freed: that link goes.
// It returns the conflict with a live owner, if any.
func (m *Manager) claimEnds(ctx context.Context, kv store.Store, v *view, rec *store.LinkRecord, take bool) (*store.EndConflict, error) {
	for range 3 {
		var conflict *store.EndConflict
		var err error
		if take {
			err = store.ClaimEnds(ctx, kv, m.keys, rec)
		} else {
			conflict, err = store.CheckEnds(ctx, kv, m.keys, rec)
		}
		if conflict == nil && !errors.As(err, &conflict) {
			return nil, err
		}
		owner, _, gerr := store.GetLink(ctx, kv, m.keys, v.ns, conflict.Owner)
		if errors.Is(gerr, store.ErrNotFound) {
			return conflict, nil // being created (the store takes over dead claims)
		}
		if gerr != nil {
			return nil, gerr
		}
		if m.linkDeclared(ctx, kv, v, &owner) {
			return conflict, nil
		}
		if _, err := store.DeleteLink(ctx, kv, m.keys, v.ns, conflict.Owner, func(*store.LinkRecord) bool { return false }); err != nil {
			return nil, err
		}
		m.log.Info("took over an interface end from a link no pod declares", "end", conflict.Pod+"."+conflict.IfName, "old", conflict.Owner)
		v.dropLink(conflict.Owner)
		m.removeEndsHere(ctx, v, &owner)
	}
	return nil, fmt.Errorf("claim the ends of %s: %w", rec.ID, store.ErrConflict)
}

// removeEndsHere removes the interfaces of link rec (its record is gone)
// that its ends' pods on this host still hold, such as an end kept while
// its peer was away (see parkVeths).
func (m *Manager) removeEndsHere(ctx context.Context, v *view, rec *store.LinkRecord) {
	for _, end := range []store.LinkEnd{rec.A, rec.B} {
		p, ok := v.pod(end.Pod)
		if !ok || p.val.Host != m.conf.Host.Name || !end.Up || end.ContainerID != p.val.ContainerID {
			continue
		}
		if err := m.wire.Remove(ctx, p.val.Netns, end.IfName, rec.ID); err != nil {
			m.log.Warn("remove an end of a link taken over", "link", rec.ID, "endIfname", end.IfName, "err", err)
			continue
		}
		m.unstitch(ctx, rec.ID, &end)
	}
}

// linkDeclared reports whether either pod of rec still declares or expects
// it, in its pod record or its announced record.
func (m *Manager) linkDeclared(ctx context.Context, kv store.Store, v *view, rec *store.LinkRecord) bool {
	for _, pod := range []string{rec.A.Pod, rec.B.Pod} {
		if m.podDeclares(ctx, kv, v, pod, rec.ID) {
			return true
		}
	}
	return false
}

// podDeclares reports whether pod declares or expects link id in its pod
// record or, failing that, its announced record.
func (m *Manager) podDeclares(ctx context.Context, kv store.Store, v *view, pod, id string) bool {
	if p, ok := v.pod(pod); ok && declares(&p.val.Pod, id) {
		return true
	}
	return m.announcedDeclares(ctx, kv, v.ns, pod, id)
}

// declares reports whether pod declares (or expects) link id.
func declares(pod *metadata.Pod, id string) bool {
	for _, l := range append(append([]metadata.Link{}, pod.Links...), pod.Expects...) {
		if store.LinkID(pod.Name, l.IfName, l.Peer, l.PeerIfName) == id {
			return true
		}
	}
	return false
}

// dropUndeclared deletes the records of the links of the pod that no
// current record describes any more (a link of an earlier incarnation): a
// link exists only while a pod declares or expects it.
func (m *Manager) dropUndeclared(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, want []wanted) error {
	return m.dropStale(ctx, kv, v, m.undeclared(v, me, want))
}

// dropUndeclaredConfirmed is dropUndeclared for the reconcile loop, whose
// view may lag a peer's new declaration: a link is dropped only once etcd
// confirms that the peer has a record and it does not declare the link
// (a peer that is away may come back with it).
func (m *Manager) dropUndeclaredConfirmed(ctx context.Context, v *view, me *store.PodRecord, want []wanted) error {
	var stale []string
	for _, id := range m.undeclared(v, me, want) {
		l, _ := v.link(id)
		_, theirs := l.val.EndsOf(me.Name)
		peer, _, err := store.GetPod(ctx, m.kv, m.keys, me.Namespace, theirs.Pod)
		away := errors.Is(err, store.ErrNotFound)
		switch {
		case err != nil && !away:
			return fmt.Errorf("confirm link %s is undeclared: %w", id, err)
		case away && l.val.Declarer == theirs.Pod:
			continue // its declarer is away: it may come back with the link
		case !away && declares(&peer.Pod, id):
			continue
		case announcedCounts(peer.Source, !away) && m.announcedDeclares(ctx, m.kv, v.ns, theirs.Pod, id),
			announcedCounts(me.Source, true) && m.announcedDeclares(ctx, m.kv, v.ns, me.Name, id):
			continue // an announced record that speaks for its pod declares the link
		}
		stale = append(stale, id)
	}
	return m.dropStale(ctx, m.kv, v, stale)
}

// announcedCounts reports whether a pod's announced record speaks for it:
// the pod has no record (not added yet, or away), or its record's
// description came from the etcd source or does not say which (an older
// agent's). A pod described by another source (its annotations) is not
// described by a stale announced record too.
func announcedCounts(source string, recorded bool) bool {
	return !recorded || source == "" || source == config.SourceEtcd
}

// announcedDeclares reports whether the announced record of pod ns/name,
// in the watched copy (not live: etcd is asked), declares link id.
func (m *Manager) announcedDeclares(ctx context.Context, kv store.Store, ns, name, id string) bool {
	if m.cache.isLive() {
		p, _ := m.cache.announcedPod(ns, name)
		return p != nil && declares(p, id)
	}
	labels, _, err := store.GetAnnounce(ctx, kv, m.keys, ns, name)
	if err != nil {
		return !errors.Is(err, store.ErrNotFound) // unknown: assume it does
	}
	p, err := metadata.Parse(labels)
	return err == nil && p != nil && declares(p, id)
}

// undeclared lists the links of pod me that neither want (its own
// declaration and the links announced towards it) nor the peer's pod
// record describes.
func (m *Manager) undeclared(v *view, me *store.PodRecord, want []wanted) []string {
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.rec.ID] = true
	}
	var stale []string
	for _, id := range v.linksOf(me.Name) {
		l, _ := v.link(id)
		_, theirs := l.val.EndsOf(me.Name)
		peer, ok := v.pod(theirs.Pod)
		if wanted[id] || ok && declares(&peer.val.Pod, id) {
			continue
		}
		stale = append(stale, id)
	}
	return stale
}

// dropStale deletes the records of links no pod declares and removes their
// ends on this host.
func (m *Manager) dropStale(ctx context.Context, kv store.Store, v *view, stale []string) error {
	return parallelCtx(ctx, len(stale), func(ctx context.Context, i int) error {
		l, _ := v.link(stale[i])
		if _, err := store.DeleteLink(ctx, kv, m.keys, v.ns, stale[i], func(*store.LinkRecord) bool { return false }); err != nil {
			return err
		}
		m.log.Info("removed a link no pod declares any more", "link", stale[i])
		v.dropLink(stale[i])
		m.removeEndsHere(ctx, v, &l.val) // an end its peer kept
		return nil
	})
}

// updateLink applies change to the current record of a link (see
// store.Update); change returns false to leave the record as it is.
func (m *Manager) updateLink(ctx context.Context, kv store.Store, ns, id string, change func(*store.LinkRecord) bool) (store.LinkRecord, int64, error) {
	return store.Update(ctx, kv, m.keys.Link(ns, id), func(r *store.LinkRecord) error {
		if !change(r) {
			return store.ErrUnchanged
		}
		r.Updated = time.Now().UTC()
		return nil
	})
}

// sameDescription: the same declarer describes the link alike.
func sameDescription(a, b *store.LinkRecord) bool {
	return a.Declarer == b.Declarer && sameAddresses(a, b)
}

// sameNetem: both records impair the ends alike.
func sameNetem(a, b *store.LinkRecord) bool {
	return a.A.Netem.Equal(b.A.Netem) && a.B.Netem.Equal(b.B.Netem)
}

// redeclareNetem records the impairments a link's declaration now gives
// its ends (unless they were set at run time); the agents of both ends
// apply them, nothing is rebuilt.
func (m *Manager) redeclareNetem(ctx context.Context, kv store.Store, v *view, w wanted) error {
	rec, ver, err := m.updateLink(ctx, kv, v.ns, w.rec.ID, func(r *store.LinkRecord) bool {
		if r.NetemSet || sameNetem(r, &w.rec) {
			return false
		}
		r.A.Netem, r.B.Netem = w.rec.A.Netem, w.rec.B.Netem
		return true
	})
	if err != nil {
		return wrapLink(w.rec.ID, "update the impairment of", err)
	}
	v.setLink(rec, ver)
	return nil
}

// sameAddresses: both records give the ends the same addresses and MTU.
func sameAddresses(a, b *store.LinkRecord) bool {
	return a.A.IP == b.A.IP && a.B.IP == b.B.IP && a.MTU == b.MTU
}

func wrapLink(id, op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s record of link %s: %w", op, id, err)
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
