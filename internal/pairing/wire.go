package pairing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// claimTTL is how long a same-host builder's claim on a link holds before
// another pod may take it over (the claimer died half way).
const claimTTL = 20 * time.Second

// settle does this pod's part of one link: nothing while the peer is not
// recorded; build the veth for both when the peer is on this host; build
// this side's vxlan end when it is elsewhere. done reports that this pod's
// end is up towards the peer's current incarnation.
func (m *Manager) settle(ctx context.Context, kv store.Store, me *store.PodRecord, id string) (done bool, err error) {
	for range maxCASRetries {
		rec, ver, err := store.GetLink(ctx, kv, m.keys, me.Namespace, id)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil // the link was removed with its pods: nothing to wire
		}
		if err != nil {
			return false, wrapLink(id, "read", err)
		}
		_, theirs := ends(&rec, me.Name)
		peer, _, err := store.GetPod(ctx, kv, m.keys, me.Namespace, theirs.Pod)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read peer %s of link %s: %w", podKey(me.Namespace, theirs.Pod), id, err)
		}
		var retry bool
		if peer.Host == me.Host {
			done, retry, err = m.settleVeth(ctx, kv, me, &peer, rec, ver)
		} else {
			done, retry, err = m.settleVxlan(ctx, kv, me, &peer, rec, ver)
		}
		if !retry {
			return done, err
		}
	}
	return false, fmt.Errorf("link %s: too much contention on its record", id)
}

// settleVeth builds a same-host link for both pods, once: the builder
// claims the record with a CAS first; a pod that finds a live claim of
// another waits for the record to change.
func (m *Manager) settleVeth(ctx context.Context, kv store.Store, me, peer *store.PodRecord, rec store.LinkRecord, ver int64) (done, retry bool, err error) {
	mine, theirs := ends(&rec, me.Name)
	if rec.State == store.LinkWired && mine.Up && theirs.Up &&
		mine.ContainerID == me.ContainerID && theirs.ContainerID == peer.ContainerID {
		return true, false, nil
	}
	if rec.Builder != "" && rec.Builder != me.ContainerID && time.Since(rec.Claimed) < claimTTL {
		m.waitLinkChange(ctx, kv, me.Namespace, rec.ID, ver, claimTTL)
		return false, true, nil
	}
	rec.Builder, rec.Claimed = me.ContainerID, time.Now().UTC()
	if _, err := store.UpdateJSON(ctx, kv, m.keys.Link(me.Namespace, rec.ID), rec, ver); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return false, true, nil
		}
		return false, false, wrapLink(rec.ID, "claim", err)
	}
	a := endpoint(me.Netns, mine, rec.MTU)
	b := endpoint(peer.Netns, theirs, rec.MTU)
	start := time.Now()
	buildErr := m.rebuild(ctx, a, b, func() error { return wiring.VethPair(ctx, a, b) })
	m.log.Info("veth", "link", rec.ID, "peer", podKey(peer.Namespace, peer.Name), "took", time.Since(start), "err", buildErr)
	_, err = m.updateLink(ctx, kv, me.Namespace, rec.ID, func(r *store.LinkRecord) bool {
		if r.Builder != me.ContainerID {
			return false
		}
		rm, rt := ends(r, me.Name)
		r.Builder = ""
		rm.ContainerID, rm.Host, rm.Up = me.ContainerID, me.Host, buildErr == nil
		rt.ContainerID, rt.Host, rt.Up = peer.ContainerID, peer.Host, buildErr == nil
		rm.Remote, rt.Remote, r.VNI = "", "", 0
		setOutcome(r, buildErr)
		return true
	})
	if buildErr != nil {
		return false, false, fmt.Errorf("veth %s to %s: %w", mine.IfName, podKey(peer.Namespace, peer.Name), buildErr)
	}
	return true, false, wrapLink(rec.ID, "record", err)
}

// settleVxlan builds this pod's end of a cross-host link, allocating the
// link's VNI first if it has none.
func (m *Manager) settleVxlan(ctx context.Context, kv store.Store, me, peer *store.PodRecord, rec store.LinkRecord, ver int64) (done, retry bool, err error) {
	mine, _ := ends(&rec, me.Name)
	if rec.VNI != 0 && mine.Up && mine.ContainerID == me.ContainerID && mine.Remote == peer.HostAddress {
		return true, false, nil
	}
	if rec.VNI == 0 {
		owner := m.keys.Link(me.Namespace, rec.ID)
		vni, err := store.AllocateVNI(ctx, kv, m.keys, owner, VNIMin, VNIMax)
		if err != nil {
			return false, false, fmt.Errorf("allocate VNI for link %s: %w", rec.ID, err)
		}
		rec.VNI = vni
		if _, err := store.UpdateJSON(ctx, kv, owner, rec, ver); err != nil {
			if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				return false, true, nil // AllocateVNI is idempotent per owner
			}
			return false, false, wrapLink(rec.ID, "set VNI of", err)
		}
	}
	buildErr := m.buildVxlan(ctx, me, peer, mine, rec)
	_, err = m.updateLink(ctx, kv, me.Namespace, rec.ID, func(r *store.LinkRecord) bool {
		rm, rt := ends(r, me.Name)
		rm.ContainerID, rm.Host, rm.Remote, rm.Up = me.ContainerID, me.Host, peer.HostAddress, buildErr == nil
		setOutcome(r, buildErr)
		if buildErr == nil && !(rt.Up && rt.ContainerID == peer.ContainerID && rt.Remote == me.HostAddress) {
			r.State = store.LinkPending
		}
		return true
	})
	if buildErr != nil {
		return false, false, fmt.Errorf("vxlan %s to %s: %w", mine.IfName, podKey(peer.Namespace, peer.Name), buildErr)
	}
	return true, false, wrapLink(rec.ID, "record", err)
}

func (m *Manager) buildVxlan(ctx context.Context, me, peer *store.PodRecord, mine *store.LinkEnd, rec store.LinkRecord) error {
	remote := net.ParseIP(peer.HostAddress)
	if remote == nil {
		return fmt.Errorf("peer %s has no usable host address %q", podKey(peer.Namespace, peer.Name), peer.HostAddress)
	}
	mtu := rec.MTU
	if mtu == 0 {
		mtu = m.conf.Vxlan.MTU
	}
	ep := endpoint(me.Netns, mine, mtu)
	opts := wiring.VxlanOptions{
		VNI: int(rec.VNI), Remote: remote, Local: net.ParseIP(me.HostAddress),
		Parent: m.conf.Host.Interface, Port: m.conf.Vxlan.Port,
	}
	start := time.Now()
	err := m.rebuild(ctx, ep, wiring.Endpoint{}, func() error { return wiring.Vxlan(ctx, ep, opts) })
	m.log.Info("vxlan", "link", rec.ID, "vni", rec.VNI, "remote", remote, "took", time.Since(start), "err", err)
	return err
}

// rebuild removes what stands under the ends' names (a stale end of an
// earlier incarnation) and builds the link.
func (m *Manager) rebuild(ctx context.Context, a, b wiring.Endpoint, build func() error) error {
	for _, ep := range []wiring.Endpoint{a, b} {
		if ep.Name == "" {
			continue
		}
		if err := wiring.Remove(ctx, ep.Netns, ep.Name); err != nil && !errors.Is(err, wiring.ErrNetnsGone) {
			return fmt.Errorf("remove stale %s: %w", ep, err)
		}
	}
	return build()
}

// setOutcome records the result of a build in the link's state.
func setOutcome(r *store.LinkRecord, err error) {
	if err != nil {
		r.State, r.Reason = store.LinkFailed, err.Error()
		return
	}
	r.State, r.Reason = store.LinkWired, ""
}

func endpoint(netns string, end *store.LinkEnd, mtu int) wiring.Endpoint {
	ep := wiring.Endpoint{Netns: netns, Name: end.IfName, MTU: mtu}
	if end.IP != "" {
		ep.Addresses = []string{end.IP}
	}
	return ep
}

// waitLinkChange waits, at most max, for the link's record to change after
// version ver.
func (m *Manager) waitLinkChange(ctx context.Context, kv store.Store, ns, id string, ver int64, max time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	key := m.keys.Link(ns, id)
	for ev := range kv.Watch(wctx, m.keys.Links(ns), ver) {
		if ev.Err != nil || ev.KV.Key == key {
			return
		}
	}
}
