package pairing

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// Del undoes the pairing of a container: its completer, its link ends, its
// records. It is idempotent; a container ratchet never paired is a no-op
// that does not touch etcd.
func (m *Manager) Del(ctx context.Context, req *Request) error {
	st, ok := m.readLocal(req.ContainerID)
	if !ok {
		return nil
	}
	if req.NetNS != "" {
		st.NetNS = req.NetNS
	}
	kv, err := m.store()
	if err != nil {
		return classify(err)
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()
	return classify(m.teardown(ctx, kv, st))
}

// teardown is DEL's work for one container; the local state is removed only
// when the records could be cleaned, so that GC can finish the job.
func (m *Manager) teardown(ctx context.Context, kv store.Store, st localState) error {
	m.stopCompleter(ctx, kv, st)
	rec, ver, err := store.GetPod(ctx, kv, m.keys, st.Namespace, st.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		m.removeLocalEnds(ctx, st)
		return fmt.Errorf("read record of %s: %w", podKey(st.Namespace, st.Name), err)
	}
	current := err == nil && rec.ContainerID == st.ContainerID
	if current {
		err := kv.Delete(ctx, m.keys.Pod(st.Namespace, st.Name), ver)
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("delete record of %s: %w", podKey(st.Namespace, st.Name), err)
		}
	}
	var errs []error
	links := m.removeEnds(ctx, kv, st)
	if current {
		for _, id := range links {
			if err := m.releaseLink(ctx, kv, st, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, m.removeLocal(st.ContainerID), m.removeJob(st.ContainerID))
	}
	return errors.Join(errs...)
}

// removeEnds deletes the container's link ends from its netns (a veth end
// takes its peer with it) and returns the IDs of the pod's links.
func (m *Manager) removeEnds(ctx context.Context, kv store.Store, st localState) []string {
	links, _, err := store.ListLinks(ctx, kv, m.keys, st.Namespace)
	if err != nil {
		m.log.Warn("list links", "err", err)
		m.removeLocalEnds(ctx, st)
		return nil
	}
	var ids []string
	for _, e := range links {
		if !involves(&e.Value, st.Name) {
			continue
		}
		ids = append(ids, e.Value.ID)
		mine, _ := ends(&e.Value, st.Name)
		if err := wiring.Remove(ctx, st.NetNS, mine.IfName); err != nil && !errors.Is(err, wiring.ErrNetnsGone) {
			m.log.Warn("remove link end", "link", e.Value.ID, "err", err)
		}
	}
	return ids
}

// removeLocalEnds is removeEnds without etcd: the ends named in the pod's
// own metadata are all it knows (a veth of a peer's declaration goes with
// the netns).
func (m *Manager) removeLocalEnds(ctx context.Context, st localState) {
	for _, name := range st.IfNames {
		if err := wiring.Remove(ctx, st.NetNS, name); err != nil && !errors.Is(err, wiring.ErrNetnsGone) {
			m.log.Warn("remove link end", "ifname", name, "err", err)
		}
	}
}

// releaseLink hands a link back after one of its pods went away: pending
// for the peer to be re-paired, or deleted (with its VNI) when the peer is
// gone too.
func (m *Manager) releaseLink(ctx context.Context, kv store.Store, st localState, id string) error {
	var peerName string
	rec, err := m.updateLink(ctx, kv, st.Namespace, id, func(r *store.LinkRecord) bool {
		mine, theirs := ends(r, st.Name)
		peerName = theirs.Pod
		mine.Up, mine.ContainerID, mine.Remote = false, "", ""
		if r.VNI == 0 {
			theirs.Up = false // the veth went with this end
		}
		r.State, r.Reason, r.Builder = store.LinkPending, "", ""
		return true
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release link %s: %w", id, err)
	}
	_, _, err = store.GetPod(ctx, kv, m.keys, st.Namespace, peerName)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := kv.Delete(ctx, m.keys.Link(st.Namespace, id), 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete link %s: %w", id, err)
	}
	if rec.VNI != 0 {
		owner := m.keys.Link(st.Namespace, id)
		if err := store.ReleaseVNI(ctx, kv, m.keys, rec.VNI, owner); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("release VNI %d of link %s: %w", rec.VNI, id, err)
		}
	}
	return nil
}

// Check verifies that every link end recorded as up for this container
// exists in its netns with the recorded kind, addresses and MTU.
func (m *Manager) Check(ctx context.Context, req *Request) error {
	st, ok := m.readLocal(req.ContainerID)
	if !ok {
		return nil
	}
	kv, err := m.store()
	if err != nil {
		return classify(err)
	}
	links, _, err := store.ListLinks(ctx, kv, m.keys, st.Namespace)
	if err != nil {
		return classify(err)
	}
	var errs []error
	for _, e := range links {
		rec := e.Value
		if !involves(&rec, st.Name) {
			continue
		}
		if mine, _ := ends(&rec, st.Name); mine.Up && mine.ContainerID == st.ContainerID {
			errs = append(errs, m.checkEnd(ctx, req.NetNS, &rec, mine))
		}
	}
	return classify(errors.Join(errs...))
}

func (m *Manager) checkEnd(ctx context.Context, netns string, rec *store.LinkRecord, mine *store.LinkEnd) error {
	info, err := wiring.Lookup(ctx, netns, mine.IfName)
	if err != nil {
		return fmt.Errorf("link %s: %w", rec.ID, err)
	}
	kind := "veth"
	if rec.VNI != 0 {
		kind = "vxlan"
	}
	if info.Kind != kind || (kind == "vxlan" && info.VNI != int(rec.VNI)) {
		return fmt.Errorf("link %s: %s is a %s (VNI %d), recorded as %s (VNI %d)", rec.ID, mine.IfName, info.Kind, info.VNI, kind, rec.VNI)
	}
	if mine.IP != "" && !slices.Contains(info.Addresses, mine.IP) {
		return fmt.Errorf("link %s: %s has addresses %v, recorded %s", rec.ID, mine.IfName, info.Addresses, mine.IP)
	}
	if rec.MTU != 0 && info.MTU != rec.MTU {
		return fmt.Errorf("link %s: %s has MTU %d, recorded %d", rec.ID, mine.IfName, info.MTU, rec.MTU)
	}
	if !info.AdminUp {
		return fmt.Errorf("link %s: %s is down", rec.ID, mine.IfName)
	}
	return nil
}

// Status reports whether etcd is reachable.
func (m *Manager) Status(ctx context.Context, _ *config.NetConf) error {
	kv, err := m.store()
	if err == nil {
		err = kv.Ping(ctx)
	}
	if err != nil {
		return &Error{Code: types.ErrTryAgainLater, Err: fmt.Errorf("etcd: %w", err)}
	}
	return nil
}

// GC tears down the pairing of this host's containers that are not in the
// valid attachments: those with local state and those with a pod record
// naming this host.
func (m *Manager) GC(ctx context.Context, _ *config.NetConf, valid []types.GCAttachment) error {
	keep := map[string]bool{}
	for _, v := range valid {
		keep[v.ContainerID] = true
	}
	kv, err := m.store()
	if err != nil {
		return classify(err)
	}
	var stale []localState
	for _, id := range m.localContainers() {
		if st, ok := m.readLocal(id); ok && !keep[id] {
			stale = append(stale, st)
		}
	}
	pods, _, err := store.ListPods(ctx, kv, m.keys, "")
	if err != nil {
		return classify(err)
	}
	for _, e := range pods {
		p := e.Value
		if p.Host == m.conf.Host.Name && !keep[p.ContainerID] {
			stale = append(stale, localState{ContainerID: p.ContainerID, Namespace: p.Namespace, Name: p.Name, NetNS: p.Netns})
		}
	}
	var errs []error
	for _, st := range stale {
		if err := m.teardown(ctx, kv, st); err != nil {
			errs = append(errs, fmt.Errorf("gc %s: %w", st.ContainerID, err))
		}
	}
	return classify(errors.Join(errs...))
}
