package pairing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Prepared is the read-only part of an ADD, started ahead by Prepare so that
// it overlaps the delegates: the metadata lookup and, for a ratchet pod, the
// etcd connection.
type Prepared struct {
	done chan struct{}
	pod  *metadata.Pod
	src  string
	err  error
}

// Wait blocks until the preparation has finished (so that the Manager may be
// closed). A nil Prepared is finished.
func (p *Prepared) Wait() {
	if p != nil {
		<-p.done
	}
}

// Prepare starts the metadata lookup and, for a ratchet pod, the etcd
// connection in the background. It writes nothing; hand the result to Add,
// and Wait for it before Close when Add is not called.
func (m *Manager) Prepare(ctx context.Context, req *Request) *Prepared {
	p := &Prepared{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.pod, p.src, p.err = m.lookup(ctx, req)
		if p.err == nil && p.pod != nil {
			if kv, serr := m.store(); serr == nil {
				pctx, cancel := context.WithTimeout(ctx, m.conf.Etcd.Timeout.D())
				_ = kv.Ping(pctx) // connect now; Add reports any real failure
				cancel()
			}
		}
	}()
	return p
}

// Add pairs a pod after delegation, using prep when Prepare ran (nil: look
// the pod up now). A pod without ratchet metadata is left alone (and etcd is
// not asked). On failure everything this ADD recorded or built is undone.
func (m *Manager) Add(ctx context.Context, req *Request, prep *Prepared) error {
	t := m.phases("lookup")
	if prep == nil {
		prep = &Prepared{}
		prep.pod, prep.src, prep.err = m.lookup(ctx, req)
	} else {
		prep.Wait()
	}
	pod, err := prep.pod, prep.err
	t("metadata")
	if err != nil || pod == nil {
		return err
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()
	log := m.log.With("pod", podKey(pod.Namespace, pod.Name), "metadataSource", prep.src)
	start := time.Now()
	unlock := m.lockPod(pod.Namespace, pod.Name)
	pending, err := m.add(ctx, req, pod, prep.src)
	unlock()
	if err != nil {
		return fmt.Errorf("pod %s: %w", podKey(pod.Namespace, pod.Name), err)
	}
	log.Info("paired", "pending", pending, "took", time.Since(start))
	return nil
}

// IsRatchetPod reports whether the pod of req has ratchet metadata in the
// configured sources (what ADD will find), without writing anything.
func (m *Manager) IsRatchetPod(ctx context.Context, req *Request) (bool, error) {
	pod, _, err := m.lookup(ctx, req)
	return pod != nil, err
}

// lookup finds the pod's metadata in the configured sources.
func (m *Manager) lookup(ctx context.Context, req *Request) (*metadata.Pod, string, error) {
	ns, name := k8sArgs(req.Args)
	q := metadata.Query{ContainerID: req.ContainerID, PodNamespace: ns, PodName: name, Annotations: req.Annotations}
	lctx, cancel := context.WithTimeout(ctx, 2*m.conf.Etcd.Timeout.D())
	defer cancel()
	return metadata.Lookup(lctx, m.sources, q, req.Reserved...)
}

// add records the pod, declares its links and settles each one; those whose
// peer is not ready are the agent's reconcile loop's. It returns the number
// of links left pending.
func (m *Manager) add(ctx context.Context, req *Request, pod *metadata.Pod, src string) (pending int, err error) {
	t := m.phases("add")
	kv, err := m.store()
	if err != nil {
		return 0, err
	}
	t("store")
	addr, err := m.hostAddress()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	me := store.PodRecord{
		Namespace: pod.Namespace, Name: pod.Name, ContainerID: req.ContainerID, Netns: req.NetNS,
		IfName: req.IfName, Host: m.conf.Host.Name, HostAddress: addr, Pod: *pod, Created: time.Now().UTC(),
		NetnsInode: netnsInode(req.NetNS), Source: src, Reserved: req.Reserved,
	}
	st := stateOf(&me)
	if err := m.writeLocal(st); err != nil {
		return 0, err
	}
	success, recorded := false, false
	defer func() {
		if success {
			return
		}
		var terr error
		if recorded {
			terr = m.teardown(context.WithoutCancel(ctx), kv, st)
		} else {
			terr = m.removeLocal(st.ContainerID) // nothing recorded or built yet
		}
		if terr != nil {
			m.log.Error("undo failed ADD", "pod", podKey(pod.Namespace, pod.Name), "err", terr)
		}
	}()
	rev, err := m.recordPod(ctx, kv, me)
	if err != nil {
		return 0, err
	}
	recorded = true
	t("record")
	left, err := m.pair(ctx, kv, &me, rev)
	if err != nil {
		return 0, err
	}
	success = true
	return len(left), nil
}

// pair sets up every link of a pod recorded at revision rev and returns
// those left pending. Links another pod is building are waited for (one
// watch), as long as its claim lives. In the agent it reads the watched
// copy, so that its cost does not grow with the namespace.
func (m *Manager) pair(ctx context.Context, kv store.Store, me *store.PodRecord, rev int64) ([]string, error) {
	t := m.phases("pair")
	fromCache := m.fresh(ctx, rev)
	want, err := m.wantedLinks(ctx, kv, &me.Pod, fromCache)
	if err != nil {
		return nil, err
	}
	t("announced")
	v, err := m.viewOf(ctx, kv, me.Namespace, []string{me.Name}, peersOf(want), fromCache)
	if err != nil {
		return nil, err
	}
	t("view")
	if err := m.dropUndeclared(ctx, kv, v, me, want); err != nil {
		return nil, err
	}
	if err := m.ensureLinks(ctx, kv, v, want); err != nil {
		return nil, err
	}
	t("ensure")
	pending, waiting, err := m.settleAll(ctx, kv, v, me, v.linksOf(me.Name), roleAdd)
	t("settle")
	if err == nil && len(waiting) > 0 {
		var more []string
		more, err = m.waitClaims(ctx, kv, v, me, waiting)
		pending = append(pending, more...)
	}
	if err == nil {
		m.ensureEndStates(ctx, kv, v, me, v.linksOf(me.Name))
		t("state")
	}
	return pending, err
}

// waitClaims follows the links that other pods claimed until each is done
// or actionable (the claim went stale or was given up), for at most
// claimTTL. It returns the links still not done.
func (m *Manager) waitClaims(ctx context.Context, kv store.Store, v *view, me *store.PodRecord, ids []string) ([]string, error) {
	wctx, cancel := context.WithTimeout(ctx, claimTTL)
	defer cancel()
	events := kv.Watch(wctx, m.keys.Links(me.Namespace), v.rev)
	for len(ids) > 0 {
		pending, waiting, err := m.settleAll(ctx, kv, v, me, ids, roleAdd)
		if err != nil {
			return nil, err
		}
		if len(waiting) == 0 {
			return pending, nil
		}
		ids = append(pending, waiting...)
		select {
		case ev, ok := <-events:
			if !ok {
				return ids, nil // claimTTL passed: the reconcile loop takes over
			}
			v.apply(m, ev)
		case <-wctx.Done():
			return ids, nil
		}
	}
	return nil, nil
}

// stateOf is what this host remembers of a recorded pod.
func stateOf(p *store.PodRecord) localState {
	st := localState{ContainerID: p.ContainerID, Namespace: p.Namespace, Name: p.Name, NetNS: p.Netns, NetnsInode: p.NetnsInode}
	for _, l := range append(append([]metadata.Link{}, p.Pod.Links...), p.Pod.Expects...) {
		st.IfNames = append(st.IfNames, l.IfName)
	}
	return st
}

// recordPod writes the pod's record and returns the revision it wrote at.
// A record of an earlier incarnation (another container ID) is replaced
// atomically and what that incarnation left on this host is removed.
func (m *Manager) recordPod(ctx context.Context, kv store.Store, me store.PodRecord) (int64, error) {
	key := m.keys.Pod(me.Namespace, me.Name)
	for range store.MaxRetries {
		created, err := store.CreateJSON(ctx, kv, key, me, 0)
		if err == nil {
			return created.Version, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return 0, fmt.Errorf("record pod: %w", err)
		}
		var prev store.PodRecord
		_, rev, err := store.Update(ctx, kv, key, func(p *store.PodRecord) error {
			prev, *p = *p, me
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile: create it
		}
		if err != nil {
			return 0, fmt.Errorf("replace pod record: %w", err)
		}
		if prev.ContainerID != me.ContainerID {
			m.log.Info("replaced earlier incarnation", "pod", podKey(me.Namespace, me.Name), "old", prev.ContainerID)
			m.retire(ctx, prev)
		}
		return rev, nil
	}
	return 0, fmt.Errorf("record pod %s: %w", podKey(me.Namespace, me.Name), store.ErrConflict)
}

// peersOf lists the other ends of the wanted links.
func peersOf(want []wanted) []string {
	out := make([]string, 0, len(want))
	for _, w := range want {
		out = append(out, w.rec.A.Pod, w.rec.B.Pod)
	}
	return out
}

// retire removes what an earlier incarnation of a pod left on this host:
// its link ends (when its netns still exists).
func (m *Manager) retire(ctx context.Context, prev store.PodRecord) {
	old := stateOf(&prev)
	if prev.Host != m.conf.Host.Name {
		return
	}
	m.removeLinks(ctx, old, old.IfNames)
}

// phases returns a func that logs, at debug level, the time since the
// previous call: where an operation spends its time.
func (m *Manager) phases(op string) func(phase string) {
	last := time.Now()
	return func(phase string) {
		now := time.Now()
		m.log.Debug("phase", "step", op, "phase", phase, "took", now.Sub(last))
		last = now
	}
}
