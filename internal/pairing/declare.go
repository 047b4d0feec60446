package pairing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// liveSource is a metadata source the agent can re-read from memory, with
// no call outside the agent: what it says of a pod now. The kubernetes
// source (the watch of the node's pods) and the etcd source (the watched
// copy of the announced records) are; the docker source is not (a
// container's labels cannot change).
type liveSource interface {
	metadata.Source
	// Live is Labels answered from memory; an error matching
	// metadata.ErrSourceUnavailable means the source does not know now
	// (then nothing is re-declared).
	Live(q metadata.Query) (map[string]string, error)
}

// Live returns the announced record of the pod from the watched copy.
func (s *etcdSource) Live(q metadata.Query) (map[string]string, error) {
	if !s.m.cache.isLive() {
		return nil, metadata.Unavailable("etcd's watched copy", errors.New("not live"))
	}
	labels, ok := s.m.cache.announcedLabels(q.PodNamespace, q.PodName)
	if !ok {
		return nil, fmt.Errorf("no announced record for %s: %w", podKey(q.PodNamespace, q.PodName), metadata.ErrNoMetadata)
	}
	return labels, nil
}

// Live returns the pod's ratchet keys from the agent's watch of its node.
func (s *kubeSource) Live(q metadata.Query) (map[string]string, error) {
	if s.pods == nil {
		return nil, metadata.Unavailable("kubernetes", errors.New("no watch of the node's pods"))
	}
	labels, ok := s.pods.Cached(q.PodNamespace, q.PodName)
	if !ok {
		return nil, metadata.Unavailable("kubernetes", fmt.Errorf("pod %s not in the watch", podKey(q.PodNamespace, q.PodName)))
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("pod %s has no ratchet keys: %w", podKey(q.PodNamespace, q.PodName), metadata.ErrNoMetadata)
	}
	return ownName(labels, q.PodNamespace, q.PodName)
}

// declaredNow returns what the pod's sources say of it now, as ADD's
// lookup would (metadata.Lookup: the first source describing the pod's
// links wins, a source only marking it defers to later ones), with the
// winning source's name. Sources that cannot change, or cannot say now,
// answer as at ADD: the one that described the pod gives its recorded
// description, the others nothing. ok is false when the record does not
// name a source of this netconf (an older agent's record, a changed
// netconf): then the record stands. A pod no source marks any more stays a ratchet pod
// (it was added as one) without links.
func (m *Manager) declaredNow(p *store.PodRecord) (pod *metadata.Pod, src string, ok bool, err error) {
	if !slices.ContainsFunc(m.sources, func(s metadata.Source) bool { return s.Name() == p.Source }) {
		// Recorded by an agent that did not say (older), or by a source
		// this netconf no longer lists: the record stands.
		return nil, "", false, nil
	}
	q := metadata.Query{ContainerID: p.ContainerID, PodNamespace: p.Namespace, PodName: p.Name}
	var marked *metadata.Pod
	var markedBy string
	for _, s := range m.sources {
		var labels map[string]string
		known := false
		if live, ok := s.(liveSource); ok {
			var lerr error
			labels, lerr = live.Live(q)
			switch {
			case errors.Is(lerr, metadata.ErrNoMetadata):
				continue
			case lerr == nil:
				known = true
			}
			// Unavailable now: answered as a source that cannot change.
		}
		var cand *metadata.Pod
		switch {
		case known:
			cand, err = metadata.Parse(labels, p.Reserved...)
			if err != nil {
				return nil, s.Name(), false, err
			}
		case s.Name() == p.Source:
			cand = &p.Pod
		default:
			continue
		}
		if cand == nil {
			continue
		}
		if cand.Describes() {
			return cand, s.Name(), true, nil
		}
		if marked == nil {
			marked, markedBy = cand, s.Name()
		}
	}
	if marked != nil {
		return marked, markedBy, true, nil
	}
	return &metadata.Pod{Name: p.Name, Namespace: p.Namespace}, p.Source, true, nil
}

// redeclare brings the pod's record up to what its sources say now (see
// declaredNow): links added to or removed from a declaration, a changed
// address or MTU. It returns the record to reconcile with.
func (m *Manager) redeclare(ctx context.Context, v *view, p store.PodRecord) store.PodRecord {
	now, src, ok, err := m.declaredNow(&p)
	if err != nil {
		// Said once per pod and error, not at every round.
		if said, _ := m.invalid.Swap(p.ContainerID, err.Error()); said != err.Error() {
			m.log.Warn("a changed declaration is invalid; the pod keeps its links", "pod", podKey(p.Namespace, p.Name), "metadataSource", src, "err", err)
			m.podEvent(p.Namespace, p.Name, ReasonInvalidLinks, fmt.Sprintf("metadata from %s: %v; links unchanged", src, err), true)
		}
		return p
	}
	m.invalid.Delete(p.ContainerID)
	if !ok || reflect.DeepEqual(*now, p.Pod) && src == p.Source {
		return p
	}
	rec, ver, err := store.Update(ctx, m.kv, m.keys.Pod(p.Namespace, p.Name), func(r *store.PodRecord) error {
		if r.ContainerID != p.ContainerID || r.Source != p.Source || !reflect.DeepEqual(r.Pod, p.Pod) {
			return store.ErrUnchanged // changed meanwhile (another incarnation, or another writer): next round
		}
		r.Pod, r.Source = *now, src
		return nil
	})
	if err != nil {
		m.log.Warn("record a changed declaration", "pod", podKey(p.Namespace, p.Name), "err", err)
		return p
	}
	if rec.ContainerID != p.ContainerID {
		return p
	}
	m.log.Info("declaration changed", "pod", podKey(p.Namespace, p.Name), "metadataSource", src, "links", len(now.Links), "expects", len(now.Expects))
	v.setPod(rec, ver)
	return rec
}
