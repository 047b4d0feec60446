package pairing

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// versioned is a record with the store version it was read at.
type versioned[T any] struct {
	val T
	ver int64
}

// view is one pod's picture of its namespace: the link and pod records with
// their versions, as of store revision rev. ADD takes one snapshot; the
// ADD waiting on claims keeps it current from its watch instead of re-reading.
type view struct {
	mu    sync.Mutex
	ns    string
	rev   int64
	links map[string]versioned[store.LinkRecord]
	pods  map[string]versioned[store.PodRecord]
	// more, when set, is the watched copy the view was cut from: records
	// outside the cut (another pod's link, that link's pods) are read
	// there, except the links dropped from the view.
	more    *cache
	dropped map[string]bool
}

// cacheWait bounds how long an operation waits for the agent's watched copy
// to catch up with a revision before it reads etcd instead.
const cacheWait = time.Second

// fresh waits until the agent's watched copy is live and holds revision
// rev (the operation's own write), so that what it shows is at least as new
// as a read from etcd would be. It reports false when there is no live
// copy or it lags: read etcd then.
func (m *Manager) fresh(ctx context.Context, rev int64) bool {
	return m.awaitCache(ctx, func(ctx context.Context) bool { return m.cache.await(ctx, rev) })
}

// awaitCache runs wait (one of the cache's await methods) for at most
// cacheWait when the copy is live.
func (m *Manager) awaitCache(ctx context.Context, wait func(context.Context) bool) bool {
	if !m.cache.isLive() {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, cacheWait)
	defer cancel()
	if wait(wctx) {
		return true
	}
	m.log.Warn("the watched copy lags; reading etcd")
	return false
}

// viewOf returns the picture of namespace ns for pods (their links, and the
// records of those pods, the links' other ends and also): from the watched
// copy when fromCache (see fresh), else a snapshot of the namespace.
func (m *Manager) viewOf(ctx context.Context, kv store.Store, ns string, pods, also []string, fromCache bool) (*view, error) {
	if fromCache {
		return m.cache.view(ns, pods, also), nil
	}
	return m.snapshot(ctx, kv, ns)
}

// snapshot reads the namespace's links and pods. The revision is the older
// of the two lists', so a watch from it misses nothing.
func (m *Manager) snapshot(ctx context.Context, kv store.Store, ns string) (*view, error) {
	links, rev1, err := store.ListLinks(ctx, kv, m.keys, ns)
	if err != nil {
		return nil, fmt.Errorf("list links of namespace %s: %w", ns, err)
	}
	pods, rev2, err := store.ListPods(ctx, kv, m.keys, ns)
	if err != nil {
		return nil, fmt.Errorf("list pods of namespace %s: %w", ns, err)
	}
	v := &view{ns: ns, rev: min(rev1, rev2), links: map[string]versioned[store.LinkRecord]{}, pods: map[string]versioned[store.PodRecord]{}}
	for _, e := range links {
		v.links[e.Value.ID] = versioned[store.LinkRecord]{e.Value, e.Version}
	}
	for _, e := range pods {
		v.pods[e.Value.Name] = versioned[store.PodRecord]{e.Value, e.Version}
	}
	return v, nil
}

// link returns the view's record of a link.
func (v *view) link(id string) (versioned[store.LinkRecord], bool) {
	v.mu.Lock()
	l, ok := v.links[id]
	more := v.more != nil && !ok && !v.dropped[id]
	v.mu.Unlock()
	if more {
		return v.more.link(v.ns, id)
	}
	return l, ok
}

// pod returns the view's record of a pod.
func (v *view) pod(name string) (versioned[store.PodRecord], bool) {
	v.mu.Lock()
	p, ok := v.pods[name]
	more := v.more != nil && !ok
	v.mu.Unlock()
	if more {
		return v.more.pod(v.ns, name)
	}
	return p, ok
}

// setLink records a newer version of a link, this operation's own write.
// A view cut from the watched copy passes it on to the copy, so that the
// next operation sees the write even before its watch event comes.
func (v *view) setLink(rec store.LinkRecord, ver int64) {
	v.mu.Lock()
	if cur, ok := v.links[rec.ID]; !ok || cur.ver < ver {
		v.links[rec.ID] = versioned[store.LinkRecord]{rec, ver}
		delete(v.dropped, rec.ID)
	}
	more := v.more
	v.mu.Unlock()
	if more != nil {
		more.offerLink(v.ns, rec, ver)
	}
}

// setPod records a newer version of a pod record, this operation's own
// write, and passes it on to the watched copy the view was cut from.
func (v *view) setPod(rec store.PodRecord, ver int64) {
	v.mu.Lock()
	if cur, ok := v.pods[rec.Name]; !ok || cur.ver < ver {
		v.pods[rec.Name] = versioned[store.PodRecord]{rec, ver}
	}
	more := v.more
	v.mu.Unlock()
	if more != nil {
		more.offerPod(v.ns, rec, ver)
	}
}

// dropLink forgets a link whose record was deleted.
func (v *view) dropLink(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.links, id)
	if v.more != nil {
		v.dropped[id] = true
	}
}

// apply folds a watch event under the namespace into the view. It reports
// whether the event was about this namespace's pods or links.
func (v *view) apply(m *Manager, ev store.Event) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ev.KV.Version > v.rev {
		v.rev = ev.KV.Version
	}
	if id, ok := strings.CutPrefix(ev.KV.Key, m.keys.Links(v.ns)+"/"); ok {
		applyEvent(v.links, id, ev)
		return true
	}
	if name, ok := strings.CutPrefix(ev.KV.Key, m.keys.Pods(v.ns)+"/"); ok {
		applyEvent(v.pods, name, ev)
		return true
	}
	return false
}

// applyEvent folds an event about records[name] into records: a delete
// removes it, a put of a newer version replaces it.
func applyEvent[T any](records map[string]versioned[T], name string, ev store.Event) {
	if ev.Type == store.Delete {
		delete(records, name)
		return
	}
	var rec T
	if store.Decode(ev.KV, &rec) != nil {
		return
	}
	if cur, ok := records[name]; !ok || cur.ver < ev.KV.Version {
		records[name] = versioned[T]{rec, ev.KV.Version}
	}
}

// linksOf returns the IDs of the links with an end on pod.
func (v *view) linksOf(pod string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var ids []string
	for id, l := range v.links {
		if l.val.Involves(pod) {
			ids = append(ids, id)
		}
	}
	return ids
}
