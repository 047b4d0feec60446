package pairing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// Del undoes the pairing of a container: its link ends, its records. It is idempotent; a container ratchet never paired is a no-op
// that does not touch etcd.
func (m *Manager) Del(ctx context.Context, req *Request) error {
	st, ok := m.readLocal(req.ContainerID)
	if !ok && !m.hasLocal(req.ContainerID) {
		return nil // never paired on this host
	}
	kv, err := m.store()
	if err != nil {
		if ok {
			st.NetNS = cmp.Or(req.NetNS, st.NetNS)
			m.removeLinks(ctx, st, st.IfNames)
		}
		return err
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()
	if !ok {
		// The state file is corrupt: find the pod by its container ID.
		if st, ok, err = m.findByContainer(ctx, kv, req); err != nil {
			return err
		}
		if !ok {
			m.log.Warn("corrupt pairing state and no record of the container; removing the state")
			return m.removeLocal(req.ContainerID)
		}
	}
	if req.NetNS != "" {
		st.NetNS = req.NetNS
	}
	unlock := m.lockPod(st.Namespace, st.Name)
	defer unlock()
	return m.teardown(ctx, kv, st)
}

// findByContainer finds the pod record of a container: the pod named in
// CNI_ARGS if it is this container's, else by a scan of the pod records.
func (m *Manager) findByContainer(ctx context.Context, kv store.Store, req *Request) (localState, bool, error) {
	if ns, name := k8sArgs(req.Args); name != "" {
		if ns == "" {
			ns = metadata.DefaultNamespace
		}
		p, _, err := store.GetPod(ctx, kv, m.keys, ns, name)
		if err == nil && p.ContainerID == req.ContainerID {
			return stateOf(&p), true, nil
		}
	}
	pods, _, err := store.ListPods(ctx, kv, m.keys, "")
	if err != nil {
		return localState{}, false, err
	}
	for _, e := range pods {
		if e.Value.ContainerID == req.ContainerID {
			return stateOf(&e.Value), true, nil
		}
	}
	return localState{}, false, nil
}

// teardown is DEL's work for one container; the local state is removed only
// when the records could be cleaned, so that GC can finish the job. The
// pod's record goes first: a peer's DEL that runs at the same time then sees
// at least one of the two records gone and deletes their link's record.
func (m *Manager) teardown(ctx context.Context, kv store.Store, st localState) error {
	m.invalid.Delete(st.ContainerID)
	rec, ver, getErr := store.GetPod(ctx, kv, m.keys, st.Namespace, st.Name)
	if getErr != nil && !errors.Is(getErr, store.ErrNotFound) {
		m.removeLinks(ctx, st, st.IfNames)
		return fmt.Errorf("read record of %s: %w", podKey(st.Namespace, st.Name), getErr)
	}
	current, err := m.deletePodRecord(ctx, kv, st, rec, ver, getErr)
	if err != nil {
		return err
	}
	v, err := m.teardownView(ctx, kv, st, ver)
	if err != nil {
		m.removeLinks(ctx, st, st.IfNames)
		return err
	}
	ids := v.linksOf(st.Name)
	var parked map[string]bool
	if current {
		parked = m.parkVeths(ctx, v, st, ids)
	}
	var names []string
	for _, name := range st.IfNames {
		if !parked[name] {
			names = append(names, name)
		}
	}
	for _, id := range ids {
		l, _ := v.link(id)
		if mine, _ := l.val.EndsOf(st.Name); !parked[mine.IfName] {
			names = append(names, mine.IfName)
		}
	}
	m.removeLinks(ctx, st, names)
	for _, id := range ids {
		l, _ := v.link(id)
		if mine, _ := l.val.EndsOf(st.Name); mine.ContainerID == st.ContainerID && !parked[mine.IfName] {
			m.unstitch(ctx, id, mine)
		}
	}
	// Release the links unless a newer incarnation owns the pod's record
	// (an interrupted DEL may already have deleted the record: release what
	// is still this container's).
	if current {
		err := parallelCtx(ctx, len(ids), func(ctx context.Context, i int) error {
			l, _ := v.link(ids[i])
			_, theirs := l.val.EndsOf(st.Name)
			_, peerThere := v.pod(theirs.Pod)
			if mine, _ := l.val.EndsOf(st.Name); parked[mine.IfName] {
				_, err := store.ParkLink(ctx, kv, m.keys, st.Namespace, ids[i], st.Name, st.ContainerID)
				return err
			}
			_, err := store.ReleaseLink(ctx, kv, m.keys, st.Namespace, ids[i], st.Name, st.ContainerID, peerThere)
			return err
		})
		if err != nil {
			return err
		}
	}
	return m.removeLocal(st.ContainerID)
}

// parkVeths parks the pod's ends of the wired same-host veths whose peer
// stays (see wiring.Park), so that the peer keeps its interface, without
// carrier, until this pod comes back. It returns the parked ends' names.
func (m *Manager) parkVeths(ctx context.Context, v *view, st localState, ids []string) map[string]bool {
	parked := map[string]bool{}
	if !sameNetns(st.NetNS, st.NetnsInode) {
		return parked
	}
	var ends []wiring.ParkEnd
	for _, id := range ids {
		l, _ := v.link(id)
		mine, theirs := l.val.EndsOf(st.Name)
		peer, ok := v.pod(theirs.Pod)
		if !ok || peer.val.Host != m.conf.Host.Name || l.val.VNI != 0 || !mine.Up || !theirs.Up || mine.ContainerID != st.ContainerID {
			continue
		}
		ends = append(ends, wiring.ParkEnd{Name: mine.IfName, Owner: id})
	}
	if len(ends) == 0 {
		return parked
	}
	for i, err := range m.wire.Park(ctx, st.NetNS, ends) {
		if err != nil {
			m.log.Warn("park the end of a veth whose peer stays; removing it", "link", ends[i].Owner, "err", err)
			continue
		}
		parked[ends[i].Name] = true
	}
	m.log.Info("parked veth ends: their peers keep their interfaces, without carrier", "count", len(parked))
	return parked
}

// unstitch removes the host vxlan that carried end (of link id) across
// hosts, once the end is gone (see wiring.Stitch); nothing for an end that
// was not stitched.
func (m *Manager) unstitch(ctx context.Context, id string, end *store.LinkEnd) {
	if !end.Stitched {
		return
	}
	if err := m.wire.Unstitch(ctx, id); err != nil {
		m.log.Warn("remove the host vxlan of a kept veth", "link", id, "endIfname", end.IfName, "err", err)
	}
}

// teardownView is the picture of the pod's links once its record (version
// ver, 0: none) is gone: from the watched copy when it has folded that in,
// else a snapshot.
func (m *Manager) teardownView(ctx context.Context, kv store.Store, st localState, ver int64) (*view, error) {
	fromCache := m.awaitCache(ctx, func(ctx context.Context) bool { return m.cache.awaitGone(ctx, st.Namespace, st.Name, ver) })
	return m.viewOf(ctx, kv, st.Namespace, []string{st.Name}, nil, fromCache)
}

// deletePodRecord deletes the pod's record if it is still this container's.
// It reports whether the pod is this container's (record deleted now or by
// an earlier, interrupted DEL) rather than a newer incarnation's.
func (m *Manager) deletePodRecord(ctx context.Context, kv store.Store, st localState, rec store.PodRecord, ver int64, getErr error) (bool, error) {
	key := m.keys.Pod(st.Namespace, st.Name)
	for range store.MaxRetries {
		if errors.Is(getErr, store.ErrNotFound) {
			return true, nil
		}
		if rec.ContainerID != st.ContainerID {
			return false, nil
		}
		err := kv.Delete(ctx, key, ver)
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return false, fmt.Errorf("delete record of %s: %w", podKey(st.Namespace, st.Name), err)
		}
		// Changed meanwhile (maybe replaced by a new incarnation): look again.
		rec, ver, getErr = store.GetPod(ctx, kv, m.keys, st.Namespace, st.Name)
		if getErr != nil && !errors.Is(getErr, store.ErrNotFound) {
			return false, fmt.Errorf("read record of %s: %w", podKey(st.Namespace, st.Name), getErr)
		}
	}
	return false, fmt.Errorf("delete record of %s: too much contention", podKey(st.Namespace, st.Name))
}

// removeLinks deletes the pod's link ends (a veth end takes its peer with
// it), and any temporary link an interrupted wiring left, in one batch —
// only while st.NetNS still names the pod's netns.
func (m *Manager) removeLinks(ctx context.Context, st localState, names []string) {
	netns := st.NetNS
	if netns == "" {
		return
	}
	m.ends.forgetNetns(netns)
	if !sameNetns(netns, st.NetnsInode) {
		m.log.Info("netns gone or reused; no link ends to remove there", "netns", netns)
		return
	}
	start := time.Now()
	n, err := m.wire.RemoveLinks(ctx, netns, names)
	if err != nil {
		m.log.Warn("remove link ends", "netns", netns, "err", err)
		return
	}
	m.log.Debug("removed link ends", "netns", netns, "count", n, "took", time.Since(start))
}

// Check verifies that every link end recorded as up for this container
// exists in its netns with the recorded kind, VNI, vxlan remote, addresses
// and MTU.
func (m *Manager) Check(ctx context.Context, req *Request) error {
	st, ok := m.readLocal(req.ContainerID)
	if !ok {
		return nil
	}
	kv, err := m.store()
	if err != nil {
		return err
	}
	// The pod's links are found in the watched copy (else a snapshot); each
	// record is then read from etcd, as current as CHECK must be.
	v, err := m.viewOf(ctx, kv, st.Namespace, []string{st.Name}, nil, m.cache.isLive())
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range v.linksOf(st.Name) {
		rec, _, err := store.GetLink(ctx, kv, m.keys, st.Namespace, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", id, err))
			continue
		}
		if mine, _ := rec.EndsOf(st.Name); mine.Up && mine.ContainerID == st.ContainerID {
			errs = append(errs, m.checkEnd(ctx, req.NetNS, &rec, mine))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) checkEnd(ctx context.Context, netns string, rec *store.LinkRecord, mine *store.LinkEnd) error {
	info, err := m.wire.Lookup(ctx, netns, mine.IfName)
	if err != nil {
		return fmt.Errorf("link %s: %w", rec.ID, err)
	}
	kind := "veth"
	if rec.VNI != 0 && !mine.Stitched {
		kind = "vxlan"
	}
	if info.Kind != kind || (kind == "vxlan" && info.VNI != int(rec.VNI)) {
		return fmt.Errorf("link %s: %s is a %s (VNI %d), recorded as %s (VNI %d)", rec.ID, mine.IfName, info.Kind, info.VNI, kind, rec.VNI)
	}
	if kind == "vxlan" && mine.Remote != "" && (info.Remote == nil || info.Remote.String() != mine.Remote) {
		return fmt.Errorf("link %s: %s points to %v, recorded remote %s", rec.ID, mine.IfName, info.Remote, mine.Remote)
	}
	if mine.Stitched {
		opts := wiring.VxlanOptions{VNI: int(rec.VNI), Remote: net.ParseIP(mine.Remote)}
		if err := m.wire.CheckStitch(ctx, rec.ID, opts); err != nil {
			return fmt.Errorf("link %s: %s is carried to %s by the host's vxlan: %w", rec.ID, mine.IfName, mine.Remote, err)
		}
	}
	if mine.IP != "" && !info.HasAddress(mine.IP) {
		return fmt.Errorf("link %s: %s has addresses %v, recorded %s", rec.ID, mine.IfName, info.Addresses, mine.IP)
	}
	if rec.MTU != 0 && info.MTU != rec.MTU {
		return fmt.Errorf("link %s: %s has MTU %d, recorded %d", rec.ID, mine.IfName, info.MTU, rec.MTU)
	}
	if info.AdminUp == rec.IsDown() {
		return fmt.Errorf("link %s: %s is %s, the link is set %s", rec.ID, mine.IfName, upDown(info.AdminUp), upDown(!rec.IsDown()))
	}
	if err := m.wire.CheckImpair(ctx, netns, mine.IfName, mine.Netem); err != nil {
		return fmt.Errorf("link %s: %s: %w", rec.ID, mine.IfName, err)
	}
	if _, missing, ok := strings.Cut(mine.Applied, "not applied: "); ok {
		return fmt.Errorf("link %s: %s: impairment not applied: %s", rec.ID, mine.IfName, missing)
	}
	return nil
}

func upDown(up bool) string {
	if up {
		return store.AdminUp
	}
	return store.AdminDown
}

// Status reports whether etcd is reachable.
func (m *Manager) Status(ctx context.Context) error {
	kv, err := m.store()
	if err == nil {
		err = kv.Ping(ctx)
	}
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// GC tears down the pairing of this host's containers that are not in the
// valid attachments: those with local state and those with a pod record
// naming this host.
func (m *Manager) GC(ctx context.Context, valid []types.GCAttachment) error {
	keep := map[string]bool{}
	for _, v := range valid {
		keep[v.ContainerID] = true
	}
	kv, err := m.store()
	if err != nil {
		return err
	}
	var stale []localState
	for _, id := range m.localContainers() {
		if st, ok := m.readLocal(id); ok && !keep[id] {
			stale = append(stale, st)
		}
	}
	pods, _, err := store.ListPods(ctx, kv, m.keys, "")
	if err != nil {
		return err
	}
	for _, e := range pods {
		p := e.Value
		if p.Host == m.conf.Host.Name && !keep[p.ContainerID] {
			stale = append(stale, stateOf(&p))
		}
	}
	var errs []error
	for _, st := range stale {
		if err := m.teardown(ctx, kv, st); err != nil {
			errs = append(errs, fmt.Errorf("gc %s: %w", st.ContainerID, err))
		}
	}
	if n, err := store.SweepLinks(ctx, kv, m.keys, "", m.conf.Host.Name); err != nil {
		errs = append(errs, fmt.Errorf("gc links of missing pods: %w", err))
	} else if n > 0 {
		m.log.Info("released links of pods that have no record", "links", n)
	}
	return errors.Join(errs...)
}
