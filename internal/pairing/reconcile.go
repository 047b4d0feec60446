package pairing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// Reconcile makes the kernel and the records agree for the pods of
// namespace ns that live on this host: it wires the links whose peer is
// there now, re-points vxlan ends towards a peer's new host, records links
// pending past pairTimeout as failed (and still wires them if the peer
// comes), and tears down pods whose netns is gone. full also checks that
// the ends recorded up exist (an agent's start). It is idempotent and
// returns what it found.
func (m *Manager) Reconcile(ctx context.Context, ns string, full bool) (NamespaceStats, error) {
	var st NamespaceStats
	local, err := m.reconcileView(ctx, ns)
	if err != nil {
		return st, err
	}
	if m.cache.isLive() {
		m.removeDeletedEnds(ctx, ns)
	}
	var errs []error
	for _, lp := range local {
		ps, err := m.reconcilePod(ctx, lp.view, lp.pod, lp.towards, full)
		st.Pods, st.Links, st.Pending = st.Pods+ps.Pods, st.Links+ps.Links, st.Pending+ps.Pending
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", podKey(ns, lp.pod.Name), err))
		}
	}
	return st, errors.Join(errs...)
}

// localPod is one pod of this host as Reconcile sees it: its record, the
// links announced towards it, and the view they are settled in.
type localPod struct {
	pod     store.PodRecord
	towards []metadata.Link
	view    *view
}

// reconcileView returns the pods of namespace ns recorded on this host,
// sharing one view: the watched copy's picture of them while it is live
// (what the loop reacts to is already folded in), else a snapshot of the
// namespace.
func (m *Manager) reconcileView(ctx context.Context, ns string) ([]localPod, error) {
	var out []localPod
	if m.cache.isLive() {
		names := m.cache.localPods(ns, m.conf.Host.Name)
		v := m.cache.view(ns, names, nil)
		var peers []string
		for _, p := range v.localPods(m.conf.Host.Name) {
			towards := m.cache.towards(ns, p.Name)
			peers = append(peers, peersOf(wantedFrom(&p.Pod, towards))...)
			out = append(out, localPod{pod: p, towards: towards})
		}
		v = m.cache.view(ns, names, peers)
		for i := range out {
			out[i].view = v
		}
		return out, nil
	}
	v, err := m.snapshot(ctx, m.kv, ns)
	if err != nil {
		return nil, err
	}
	announced, err := m.listAnnounced(ctx, m.kv, ns)
	if err != nil {
		return nil, err
	}
	for _, p := range v.localPods(m.conf.Host.Name) {
		out = append(out, localPod{pod: p, towards: announcedTowards(&p.Pod, announced), view: v})
	}
	return out, nil
}

// NamespaceStats counts a namespace's pods on this host, their links, and
// those links not wired yet.
type NamespaceStats struct {
	Pods, Links, Pending int
}

// localPods lists the view's pods recorded on host.
func (v *view) localPods(host string) []store.PodRecord {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []store.PodRecord
	for _, p := range v.pods {
		if p.val.Host == host {
			out = append(out, p.val)
		}
	}
	return out
}

// reconcilePod is Reconcile for one pod, under its lock.
func (m *Manager) reconcilePod(ctx context.Context, v *view, p store.PodRecord, towards []metadata.Link, full bool) (NamespaceStats, error) {
	unlock := m.lockPod(p.Namespace, p.Name)
	defer unlock()
	st, ok := m.readLocal(p.ContainerID)
	if !ok || st.Name != p.Name || st.Namespace != p.Namespace {
		return NamespaceStats{}, nil // being added or deleted: not this loop's
	}
	if !sameNetns(p.Netns, p.NetnsInode) {
		m.log.Info("pod's netns is gone; tearing its pairing down", "pod", podKey(p.Namespace, p.Name), "container", p.ContainerID)
		return NamespaceStats{}, m.teardown(ctx, m.kv, st)
	}
	if full {
		m.verifyEnds(ctx, v, &p)
	}
	p = m.redeclare(ctx, v, p)
	want := wantedFrom(&p.Pod, towards)
	if err := m.dropUndeclaredConfirmed(ctx, v, &p, want); err != nil {
		m.log.Warn("drop undeclared links of pod", "pod", podKey(p.Namespace, p.Name), "err", err)
	}
	if err := m.ensureLinks(ctx, m.kv, v, want); err != nil {
		m.log.Warn("links of pod", "pod", podKey(p.Namespace, p.Name), "err", err)
	}
	ids := v.linksOf(p.Name)
	pending, waiting, err := m.settleAll(ctx, m.kv, v, &p, ids, roleAgent)
	m.timedOut(ctx, v, &p, pending)
	m.ensureEndStates(ctx, m.kv, v, &p, ids)
	return NamespaceStats{Pods: 1, Links: len(ids), Pending: len(pending) + len(waiting)}, err
}

// verifyEnds marks the pod's ends that are recorded up but missing from its
// netns as down, so that they are built again, and removes what an
// interrupted wiring left there under temporary names.
func (m *Manager) verifyEnds(ctx context.Context, v *view, p *store.PodRecord) {
	if _, err := m.wire.RemoveLinks(ctx, p.Netns, nil); err != nil {
		m.log.Warn("remove temporary links", "pod", podKey(p.Namespace, p.Name), "err", err)
	}
	for _, id := range v.linksOf(p.Name) {
		l, _ := v.link(id)
		mine, _ := l.val.EndsOf(p.Name)
		if !mine.Up || mine.ContainerID != p.ContainerID {
			continue
		}
		if _, err := m.wire.Lookup(ctx, p.Netns, mine.IfName); !errors.Is(err, wiring.ErrNotFound) {
			continue
		}
		m.log.Info("link end recorded up is missing; rebuilding it", "link", id, "endIfname", mine.IfName)
		rec, ver, err := m.updateLink(ctx, m.kv, p.Namespace, id, func(r *store.LinkRecord) bool {
			rm, _ := r.EndsOf(p.Name)
			if !rm.Up {
				return false
			}
			rm.Up, r.State = false, store.LinkPending
			return true
		})
		if err == nil {
			v.setLink(rec, ver)
		}
	}
}

// timedOut records the links of pod p still pending past pairTimeout as
// failed, with the reason; they are still wired if the peer comes. The
// time runs from p's creation, or from when the peer went away (a link
// whose peer is not back in time is gone for good).
func (m *Manager) timedOut(ctx context.Context, v *view, p *store.PodRecord, pending []string) {
	limit := m.conf.PairTimeout.D()
	for _, id := range pending {
		l, ok := v.link(id)
		if !ok || time.Since(p.Created) <= limit || !l.val.Gone.IsZero() && time.Since(l.val.Gone) <= limit {
			continue
		}
		_, _, err := m.updateLink(ctx, m.kv, p.Namespace, id, func(r *store.LinkRecord) bool {
			if r.State == store.LinkWired || r.State == store.LinkFailed {
				return false
			}
			_, theirs := r.EndsOf(p.Name)
			r.State = store.LinkFailed
			if r.Gone.IsZero() {
				r.Reason = fmt.Sprintf("peer %s not wired within pairTimeout (%s)", podKey(p.Namespace, theirs.Pod), m.conf.PairTimeout)
			} else {
				r.Reason = fmt.Sprintf("peer %s gone for good: went away at %s and not back within pairTimeout (%s)",
					podKey(p.Namespace, theirs.Pod), r.Gone.Format(time.RFC3339), m.conf.PairTimeout)
			}
			return true
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			m.log.Warn("record timed-out link", "link", id, "err", err)
		}
	}
}

// SweepTombstones finishes the DELs the plugin did without the agent (see
// agentapi.TombstonePath): the plugin removed the link ends, the agent
// removes the records.
func (m *Manager) SweepTombstones(ctx context.Context) error {
	dir := agentapi.StateDir(m.conf.CNIDir)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list pairing states: %w", err)
	}
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), agentapi.TombstoneSuffix)
		if !ok || id == "" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := m.sweepTombstone(ctx, path); err != nil {
			errs = append(errs, fmt.Errorf("finish DEL of %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) sweepTombstone(ctx context.Context, path string) error {
	st, err := readState(path)
	if err != nil {
		m.log.Warn("unreadable tombstone removed", "file", path, "err", err)
		return os.Remove(path)
	}
	unlock := m.lockPod(st.Namespace, st.Name)
	defer unlock()
	if err := m.teardown(ctx, m.kv, st); err != nil {
		return err
	}
	m.log.Info("finished a DEL the plugin did without the agent", "pod", podKey(st.Namespace, st.Name), "container", st.ContainerID)
	return os.Remove(path)
}

// retryUnavailable runs fn until it succeeds or fails for another reason
// than etcd being unavailable, backing off up to 2s between tries, for as
// long as ctx lasts.
func retryUnavailable(ctx context.Context, fn func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// removeDeletedEnds removes, from the pods of this host, the ends of the
// links of namespace ns whose records were deleted since the last round
// (a link another host's agent dropped as undeclared): the interface goes
// when it is still the link's (its alias names it) and no record of the
// same link came back meanwhile.
func (m *Manager) removeDeletedEnds(ctx context.Context, ns string) {
	for _, rec := range m.cache.takeRemoved(ns) {
		for _, end := range []store.LinkEnd{rec.A, rec.B} {
			p, ok := m.cache.pod(ns, end.Pod)
			if !ok || p.val.Host != m.conf.Host.Name || end.ContainerID != p.val.ContainerID {
				continue
			}
			unlock := m.lockPod(ns, end.Pod)
			if _, back := m.cache.link(ns, rec.ID); !back {
				err := m.wire.Remove(ctx, p.val.Netns, end.IfName, rec.ID)
				switch {
				case err == nil:
					m.log.Debug("removed the end of a deleted link", "link", rec.ID, "pod", podKey(ns, end.Pod), "endIfname", end.IfName)
					m.unstitch(ctx, rec.ID, &end)
				case !errors.Is(err, wiring.ErrNotOwned):
					m.log.Warn("remove the end of a deleted link; trying again next round", "link", rec.ID, "endIfname", end.IfName, "err", err)
					m.cache.noteRemoved(ns, rec)
				}
			}
			unlock()
		}
	}
}
