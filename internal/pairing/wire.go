package pairing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// settleAll decides and runs every link of the pod, on a worker pool. It
// returns the links left pending and those waiting for another pod's claim.
func (m *Manager) settleAll(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, ids []string, r role) (pending, waiting []string, err error) {
	var mu sync.Mutex
	err = parallelCtx(ctx, len(ids), func(ctx context.Context, i int) error {
		st, err := m.settleOne(ctx, kv, v, me, ids[i], r)
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case stepPending:
			pending = append(pending, ids[i])
		case stepWait:
			waiting = append(waiting, ids[i])
		}
		return err
	})
	return pending, waiting, err
}

// settleOne runs the step of one link, re-reading the record when a CAS
// finds it changed. It returns the step that is left (done, pending, wait).
func (m *Manager) settleOne(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, id string, r role) (step, error) {
	for range store.MaxRetries {
		st := decide(v, me, id, r)
		var err error
		switch st {
		case stepVeth:
			err = m.buildVethAs(ctx, kv, v, me, id, r)
			if errors.Is(err, errPeerBusy) {
				return stepPending, nil // the peer's own ADD or DEL decides
			}
		case stepVxlan:
			err = m.buildVxlanEnd(ctx, kv, v, me, id)
		default:
			return st, nil
		}
		if err == nil {
			continue // decide again from the recorded outcome
		}
		if !errors.Is(err, errStale) {
			return stepPending, err
		}
		rec, ver, gerr := store.GetLink(ctx, kv, m.keys, me.Namespace, id)
		if errors.Is(gerr, store.ErrNotFound) {
			return stepDone, nil
		}
		if gerr != nil {
			return stepPending, wrapLink(id, "read", gerr)
		}
		v.setLink(rec, ver)
	}
	return stepPending, fmt.Errorf("link %s: too much contention on its record", id)
}

// unpark gives the end parked when one pod of the veth went away (see
// wiring.Park) to that pod's new incarnation, when the other end still is
// where the record says: the survivor keeps its interface. An error means
// there is nothing to unpark: build the veth.
func (m *Manager) unpark(ctx context.Context, rec *store.LinkRecord, me, peer *store.PodRecord, a, b wiring.Endpoint) error {
	mine, theirs := rec.EndsOf(me.Name)
	var ep wiring.Endpoint
	switch {
	case !mine.Up && theirs.Up && theirs.ContainerID == peer.ContainerID:
		ep = a
	case mine.Up && !theirs.Up && mine.ContainerID == me.ContainerID:
		ep = b
	default:
		return wiring.ErrNotFound
	}
	m.ends.forget(ep.Netns, ep.Name)
	err := m.wire.Unpark(ctx, ep)
	if err == nil {
		m.log.Info("unparked a veth end: the surviving end was kept", "link", rec.ID, "into", ep.Netns)
	} else if !errors.Is(err, wiring.ErrNotFound) {
		m.log.Warn("unpark a veth end; building the veth anew", "link", rec.ID, "err", err)
	}
	return err
}

// errPeerBusy: the reconcile loop leaves a veth alone while the peer pod
// is being added or deleted, or when its record changed.
var errPeerBusy = errors.New("peer pod busy or changed")

// buildVethAs is buildVeth; the reconcile loop (roleAgent), which holds
// only its own pod's lock, also takes the peer's (without waiting) and
// makes sure the peer is still the one in its view, so that it never
// builds into the netns of a pod whose DEL runs or ran.
func (m *Manager) buildVethAs(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, id string, r role) error {
	if r != roleAgent {
		return m.buildVeth(ctx, kv, v, me, id)
	}
	l, _ := v.link(id)
	_, theirs := l.val.EndsOf(me.Name)
	peerV, _ := v.pod(theirs.Pod)
	unlock, ok := m.tryLockPod(me.Namespace, theirs.Pod)
	if !ok {
		return errPeerBusy
	}
	defer unlock()
	cur, _, err := store.GetPod(ctx, kv, m.keys, me.Namespace, theirs.Pod)
	if errors.Is(err, store.ErrNotFound) || err == nil && cur.ContainerID != peerV.val.ContainerID {
		return errPeerBusy
	}
	if err != nil {
		return fmt.Errorf("read record of peer %s: %w", theirs.Pod, err)
	}
	if _, ok := m.readLocal(cur.ContainerID); !ok {
		return errPeerBusy // its DEL ran here
	}
	return m.buildVeth(ctx, kv, v, me, id)
}

// buildVeth claims the link with a CAS, builds the veth for both pods and
// records the outcome. A failure on the peer's side (its netns is gone) is
// recorded and not this pod's error.
func (m *Manager) buildVeth(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, id string) error {
	l, _ := v.link(id)
	rec := l.val
	_, theirs := rec.EndsOf(me.Name)
	peerV, _ := v.pod(theirs.Pod)
	peer := peerV.val
	rec.Builder, rec.Claimed = me.ContainerID, time.Now().UTC()
	key := m.keys.Link(me.Namespace, id)
	kvr, err := store.UpdateJSON(ctx, kv, key, rec, l.ver)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return errStale
	}
	if err != nil {
		return wrapLink(id, "claim", err)
	}
	mine, theirs := rec.EndsOf(me.Name)
	a, b := endpoint(me.Netns, mine, &rec, rec.MTU), endpoint(peer.Netns, theirs, &rec, rec.MTU)
	start := time.Now()
	buildErr := m.unpark(ctx, &rec, me, &peer, a, b)
	if buildErr != nil {
		buildErr = m.build(ctx, a, b, func() error { return m.wire.VethPair(ctx, a, b) })
	}
	if buildErr != nil {
		m.obs.WiringFailed(failureReason(buildErr))
		buildErr = fmt.Errorf("veth to peer %s: %w", podKey(peer.Namespace, peer.Name), buildErr)
	}
	m.log.Debug("veth", "link", id, "peer", podKey(peer.Namespace, peer.Name), "took", time.Since(start), "err", buildErr)
	built := rec
	var oldVNI uint32
	outcome := func(r *store.LinkRecord) bool {
		if r.Builder != me.ContainerID || !sameShape(r, &built) {
			return false // claim taken over, or the description changed: build again
		}
		rm, rt := r.EndsOf(me.Name)
		oldVNI = r.VNI
		r.Builder, r.VNI = "", 0
		rm.ContainerID, rm.Host, rm.Up, rm.Remote, rm.Stitched = me.ContainerID, me.Host, buildErr == nil, "", false
		rt.ContainerID, rt.Host, rt.Up, rt.Remote, rt.Stitched = peer.ContainerID, peer.Host, buildErr == nil, "", false
		setOutcome(r, buildErr)
		return true
	}
	if err := m.record(ctx, kv, v, rec, kvr.Version, outcome); err != nil {
		return err
	}
	if oldVNI != 0 { // was a cross-host link: its VNI is free again
		if err := m.wire.Unstitch(ctx, id); err != nil { // a kept veth's host vxlan, if any
			m.log.Warn("remove the host vxlan of a kept veth", "link", id, "err", err)
		}
		if err := store.ReleaseVNI(ctx, kv, m.keys, oldVNI, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			m.log.Warn("release VNI", "vni", oldVNI, "link", id, "err", err)
		}
	}
	if buildErr != nil && m.peerGone(ctx, kv, &peer) {
		m.log.Warn("peer went away while wiring; link recorded as failed", "link", id, "err", buildErr)
		return nil
	}
	return m.ownFault(buildErr, peer.Netns, "link "+mine.IfName)
}

// peerGone reports whether the peer's pod record is gone or now belongs to
// another container: a build that failed meanwhile is the peer's fault.
func (m *Manager) peerGone(ctx context.Context, kv store.Store, peer *store.PodRecord) bool {
	cur, _, err := store.GetPod(ctx, kv, m.keys, peer.Namespace, peer.Name)
	return errors.Is(err, store.ErrNotFound) || err == nil && cur.ContainerID != peer.ContainerID
}

// sameShape reports whether two versions of a link describe the same
// interfaces: addresses, MTU and VNI. An outcome built from one does not
// apply to the other.
func sameShape(a, b *store.LinkRecord) bool {
	return a.A.IP == b.A.IP && a.B.IP == b.B.IP && a.MTU == b.MTU && a.VNI == b.VNI
}

// buildVxlanEnd allocates the link's VNI if it has none, builds this pod's
// vxlan end towards the peer's host and records it.
func (m *Manager) buildVxlanEnd(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, id string) error {
	l, _ := v.link(id)
	rec, ver := l.val, l.ver
	_, theirs := rec.EndsOf(me.Name)
	peerV, _ := v.pod(theirs.Pod)
	peer := peerV.val
	key := m.keys.Link(me.Namespace, id)
	if rec.VNI == 0 {
		vni, err := store.AllocateVNI(ctx, kv, m.keys, key, VNIMin, store.MaxVNI)
		if err != nil {
			return fmt.Errorf("allocate VNI for link %s: %w", id, err)
		}
		rec.VNI = vni
		rec.Updated = time.Now().UTC()
		kvr, err := store.UpdateJSON(ctx, kv, key, rec, ver)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errStale // AllocateVNI is idempotent per owner
		}
		if err != nil {
			return wrapLink(id, "set VNI of", err)
		}
		ver = kvr.Version
	}
	mine, theirs := rec.EndsOf(me.Name)
	current := mine.Up && mine.ContainerID == me.ContainerID
	// A veth this pod kept when its same-host peer left (or one already
	// stitched) is carried across hosts underneath: the pod's interface
	// stays as it is.
	stitch := current && (mine.Stitched || mine.Remote == "")
	repoint := mine.Up && mine.Remote != "" && mine.Remote != peer.HostAddress
	var buildErr error
	switch {
	case stitch:
		buildErr = m.stitch(ctx, me, &peer, rec)
		if buildErr != nil {
			m.log.Info("carry the kept veth across hosts failed; building a vxlan end instead", "link", id, "err", buildErr)
			stitch = false
		}
	case repoint && current:
		// The end stays (name, addresses, MTU, VNI); only its remote moves.
		buildErr = m.wire.Repoint(ctx, me.Netns, mine.IfName, rec.ID, net.ParseIP(peer.HostAddress))
		if buildErr != nil {
			m.log.Info("re-point in place failed; rebuilding the end", "link", id, "err", buildErr)
		}
	}
	if !stitch && (!repoint || !current || buildErr != nil) {
		buildErr = m.buildVxlan(ctx, me, &peer, mine, rec)
	}
	if buildErr != nil {
		m.obs.WiringFailed(failureReason(buildErr))
		buildErr = fmt.Errorf("vxlan to peer %s on %s: %w", podKey(peer.Namespace, peer.Name), peer.Host, buildErr)
	} else if repoint {
		m.obs.Repointed(me.Namespace)
		m.log.Info("vxlan end re-pointed at the peer's new host", "link", id, "from", mine.Remote, "to", peer.HostAddress)
	}
	built := rec
	outcome := func(r *store.LinkRecord) bool {
		if !sameShape(r, &built) {
			return false // the description or VNI changed: build again
		}
		rm, rt := r.EndsOf(me.Name)
		rm.ContainerID, rm.Host, rm.Remote, rm.Up = me.ContainerID, me.Host, peer.HostAddress, buildErr == nil
		rm.Stitched = stitch && buildErr == nil
		setOutcome(r, buildErr)
		if buildErr == nil && !(rt.Up && rt.ContainerID == peer.ContainerID && rt.Remote == me.HostAddress) {
			r.State = store.LinkPending
		}
		return true
	}
	if err := m.record(ctx, kv, v, rec, ver, outcome); err != nil {
		return err
	}
	return m.ownFault(buildErr, "", "link "+mine.IfName)
}

// record applies the outcome of a build to the record read at version ver
// and writes it with a CAS; when the record changed meanwhile, the outcome
// is applied to the current record instead (outcome may decline).
func (m *Manager) record(ctx context.Context, kv store.Store, v *view, rec store.LinkRecord, ver int64, outcome func(*store.LinkRecord) bool) error {
	if outcome(&rec) {
		rec.Updated = time.Now().UTC()
		kvr, err := store.UpdateJSON(ctx, kv, m.keys.Link(rec.Namespace, rec.ID), rec, ver)
		if err == nil {
			v.setLink(rec, kvr.Version)
			return nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return wrapLink(rec.ID, "record", err)
		}
	}
	out, nver, err := m.updateLink(ctx, kv, rec.Namespace, rec.ID, outcome)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return wrapLink(rec.ID, "record", err)
	}
	v.setLink(out, nver)
	return nil
}

// errPeerSide marks a build that failed on the peer's side (its name is
// held by an interface that is not this link's): recorded on the link, not
// this pod's error.
var errPeerSide = errors.New("conflict on the peer's side")

// ownFault returns a build error unless it is the peer's: its netns is gone,
// or its end's name is held by another interface.
func (m *Manager) ownFault(buildErr error, peerNetns, what string) error {
	if buildErr == nil {
		return nil
	}
	if errors.Is(buildErr, errPeerSide) {
		m.log.Warn("peer's interface name is taken; link recorded as failed", "what", what, "err", buildErr)
		return nil
	}
	if peerNetns != "" && errors.Is(buildErr, wiring.ErrNetnsGone) {
		if _, err := os.Stat(peerNetns); errors.Is(err, os.ErrNotExist) {
			m.log.Warn("peer's netns is gone; link recorded as failed", "what", what, "err", buildErr)
			return nil
		}
	}
	return fmt.Errorf("%s: %w", what, buildErr)
}

// vxlanOptions are the underlay side of this host's end of link rec
// towards the peer's host, and the end's MTU.
func (m *Manager) vxlanOptions(me, peer *store.PodRecord, rec *store.LinkRecord) (wiring.VxlanOptions, int, error) {
	remote := net.ParseIP(peer.HostAddress)
	if remote == nil {
		return wiring.VxlanOptions{}, 0, fmt.Errorf("peer %s has no usable host address %q", podKey(peer.Namespace, peer.Name), peer.HostAddress)
	}
	mtu := rec.MTU
	if mtu == 0 {
		mtu = m.conf.Vxlan.MTU
	}
	return wiring.VxlanOptions{
		VNI: int(rec.VNI), Remote: remote, Local: net.ParseIP(me.HostAddress),
		Parent: m.conf.Host.Interface, Port: m.conf.Vxlan.Port,
	}, mtu, nil
}

// stitch carries the veth end this pod kept (its peer's end parked on this
// host) to the peer's host over a vxlan in the host netns, or re-points
// that vxlan in place (see wiring.Stitch). On failure nothing of the
// stitch is left: the caller builds an ordinary vxlan end instead.
func (m *Manager) stitch(ctx context.Context, me, peer *store.PodRecord, rec store.LinkRecord) error {
	opts, mtu, err := m.vxlanOptions(me, peer, &rec)
	if err != nil {
		return err
	}
	start := time.Now()
	err = m.wire.Stitch(ctx, rec.ID, mtu, opts)
	m.log.Debug("stitch", "link", rec.ID, "vni", rec.VNI, "remote", opts.Remote, "took", time.Since(start), "err", err)
	if err != nil {
		if uerr := m.wire.Unstitch(ctx, rec.ID); uerr != nil {
			m.log.Warn("undo a failed stitch", "link", rec.ID, "err", uerr)
		}
		return err
	}
	m.log.Info("kept veth carried across hosts: the pod's interface stays", "link", rec.ID, "remote", opts.Remote)
	return nil
}

func (m *Manager) buildVxlan(ctx context.Context, me, peer *store.PodRecord, mine *store.LinkEnd, rec store.LinkRecord) error {
	opts, mtu, err := m.vxlanOptions(me, peer, &rec)
	if err != nil {
		return err
	}
	remote := opts.Remote
	ep := endpoint(me.Netns, mine, &rec, mtu)
	if m.vxlanInPlace(ctx, ep, rec, remote) {
		return nil // built by this pod's previous pass (its record write lost a race)
	}
	start := time.Now()
	err = m.build(ctx, ep, wiring.Endpoint{}, func() error { return m.wire.Vxlan(ctx, ep, opts) })
	m.log.Debug("vxlan", "link", rec.ID, "vni", rec.VNI, "remote", remote, "took", time.Since(start), "err", err)
	return err
}

// vxlanInPlace reports whether the pod already has this very end: ratchet's
// vxlan of this link with its VNI, remote, address and MTU. Rebuilding it
// would only take it away for a moment (and lose the peer's first ARP).
func (m *Manager) vxlanInPlace(ctx context.Context, ep wiring.Endpoint, rec store.LinkRecord, remote net.IP) bool {
	info, err := m.wire.Lookup(ctx, ep.Netns, ep.Name)
	if err != nil || !info.Ours || info.Owner != rec.ID || info.Kind != "vxlan" || info.VNI != int(rec.VNI) ||
		!info.Remote.Equal(remote) || ep.MTU != 0 && info.MTU != ep.MTU {
		return false
	}
	for _, a := range ep.Addresses {
		if !info.HasAddress(a) {
			return false
		}
	}
	return true
}

// build runs fn. When a name is taken by a stale end of this very link (an
// earlier incarnation, a repeated ADD), it removes that end and tries once
// more; any other holder of the name is a conflict, and stays untouched.
func (m *Manager) build(ctx context.Context, a, b wiring.Endpoint, fn func() error) error {
	for _, ep := range []wiring.Endpoint{a, b} {
		m.ends.forget(ep.Netns, ep.Name)
	}
	err := fn()
	defer func() {
		if err == nil { // built anew: up, nothing impairing it
			for _, ep := range []wiring.Endpoint{a, b} {
				if ep.Name != "" {
					m.ends.set(ep.Netns, ep.Name, endState{})
				}
			}
		}
	}()
	if !errors.Is(err, wiring.ErrExists) {
		return err
	}
	for i, ep := range []wiring.Endpoint{a, b} {
		if ep.Name == "" {
			continue
		}
		err := m.wire.Remove(ctx, ep.Netns, ep.Name, ep.Owner)
		if errors.Is(err, wiring.ErrNotOwned) && i == 1 {
			return fmt.Errorf("%w: the peer's interface %s: %w", errPeerSide, ep.Name, err)
		}
		if errors.Is(err, wiring.ErrNotOwned) {
			return fmt.Errorf("%w: interface %s: %w", ErrConflict, ep.Name, err)
		}
		if err != nil {
			return fmt.Errorf("remove stale %s: %w", ep, err)
		}
	}
	err = fn()
	return err
}

// setOutcome records the result of a build in the link's state.
func setOutcome(r *store.LinkRecord, err error) {
	if err != nil {
		r.State, r.Reason = store.LinkFailed, err.Error()
		return
	}
	r.State, r.Reason = store.LinkWired, ""
	if r.A.Up && r.B.Up {
		r.Gone = time.Time{}
	}
}

func endpoint(netns string, end *store.LinkEnd, rec *store.LinkRecord, mtu int) wiring.Endpoint {
	ep := wiring.Endpoint{Netns: netns, Name: end.IfName, MTU: mtu, Owner: rec.ID}
	if end.IP != "" {
		ep.Addresses = []string{end.IP}
	}
	return ep
}
