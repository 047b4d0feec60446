package pairing

import (
	"context"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// resyncEvery is how often the loop reconciles every namespace with pods
// on this host even without events: claims that went stale and
// pairTimeout are noticed by time, not by events.
const resyncEvery = 5 * time.Second

// Follower is the agent's reconcile loop for one Manager: one watch on the
// prefix, every event only enqueues the namespace it touches, one worker
// reconciles namespaces with pods on this host.
type Follower struct {
	m     *Manager
	queue *queue
	mu    sync.Mutex
	// local are the pods recorded on this host, by namespace.
	local map[string]map[string]bool
	stats map[string]NamespaceStats
	// said is the last state of each link with an end on this host, as
	// its Events told it (ns/id → state); the follow goroutine's alone.
	said map[string]store.LinkState
}

// NewFollower returns the reconcile loop of m; Run runs it.
func (m *Manager) NewFollower() *Follower {
	return &Follower{m: m, queue: newQueue(), local: map[string]map[string]bool{}, stats: map[string]NamespaceStats{},
		said: map[string]store.LinkState{}}
}

// Run lists this host's pods, reconciles them fully (the agent's start)
// and then follows the prefix until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); f.work(ctx) }()
	defer func() { <-done }()
	if f.m.kube != nil {
		// A pod of the node whose labels or annotations changed: its
		// namespace is reconciled (and the pod re-declared).
		defer f.m.kube.Subscribe(f.podChanged)()
	}
	first := true
	for ctx.Err() == nil {
		var rev int64
		err := retryUnavailable(ctx, func() error {
			var err error
			rev, err = f.list(ctx, first)
			return err
		})
		if err != nil {
			f.m.log.Warn("list pods", "err", err)
			sleep(ctx, 2*time.Second)
			continue
		}
		if !first {
			f.m.obs.Relisted()
		}
		first = false
		f.follow(ctx, rev)
	}
	return nil
}

// Stats sums the last reconciled figures of every namespace.
func (f *Follower) Stats() NamespaceStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s NamespaceStats
	for ns, pods := range f.local {
		s.Pods += len(pods)
		s.Links += f.stats[ns].Links
		s.Pending += f.stats[ns].Pending
	}
	return s
}

// list reads every pod, link and announced record into the watched copy,
// keeps this host's pods, and enqueues their namespaces. It returns the
// revision to watch after.
func (f *Follower) list(ctx context.Context, full bool) (int64, error) {
	var kvs []store.KV
	rev := int64(0)
	for _, dir := range []string{f.m.keys.Pods(""), f.m.keys.Links(""), f.m.keys.Announces("")} {
		got, r, err := f.m.kv.List(ctx, dir)
		if err != nil {
			return 0, err
		}
		kvs = append(kvs, got...)
		if rev == 0 || r < rev {
			rev = r
		}
	}
	for _, gone := range f.m.cache.reset(f.m.keys, kvs, rev) {
		// Deleted while the watch was down: their ends here go too.
		if f.m.hasLocalEnd(gone.Namespace, &gone) {
			f.m.cache.noteRemoved(gone.Namespace, gone)
		}
	}
	local := map[string]map[string]bool{}
	for _, kv := range kvs {
		var rec store.PodRecord
		if kind, _, _, ok := splitKey(f.m.keys, kv.Key); !ok || kind != kindPods || store.Decode(kv, &rec) != nil {
			continue
		}
		if rec.Host == f.m.conf.Host.Name {
			if local[rec.Namespace] == nil {
				local[rec.Namespace] = map[string]bool{}
			}
			local[rec.Namespace][rec.Name] = true
		}
	}
	f.mu.Lock()
	f.local = local
	f.mu.Unlock()
	if full {
		f.queue.add("", false) // the DELs done without the agent first
	}
	f.enqueueLocal(full)
	return rev, nil
}

func (f *Follower) enqueueLocal(full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ns := range f.local {
		f.queue.add(ns, full)
	}
}

// follow watches the prefix after rev until the watch breaks or ctx ends;
// the watched copy is not live from then until the next list.
func (f *Follower) follow(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer f.m.cache.setLive(false)
	events := f.m.kv.Watch(wctx, f.m.keys.Prefix, rev)
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok || ev.Err != nil {
				return
			}
			f.apply(ev)
		case <-tick.C:
			f.queue.add("", false) // the tombstones
			f.enqueueLocal(false)
		case <-ctx.Done():
			return
		}
	}
}

// apply notes a pod event and enqueues the namespace of any event that
// may concern this host's pods.
func (f *Follower) apply(ev store.Event) {
	kind, ns, name, ok := splitKey(f.m.keys, ev.KV.Key)
	var old versioned[store.LinkRecord]
	had := false
	if ok && kind == kindLinks && ev.Type == store.Delete {
		old, had = f.m.cache.link(ns, name)
		// A record newer than the delete (the agent's own write, taken
		// ahead of its event) is not what was deleted.
		had = had && old.ver < ev.KV.Version
	}
	f.m.cache.apply(f.m.keys, ev)
	if !ok {
		return
	}
	if kind == kindLinks {
		f.linkChanged(ev, ns, name, old.val, had)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if kind == kindPods {
		var rec store.PodRecord
		mine := ev.Type == store.Put && store.Decode(ev.KV, &rec) == nil && rec.Host == f.m.conf.Host.Name
		switch {
		case mine && f.local[ns] == nil:
			f.local[ns] = map[string]bool{name: true}
		case mine:
			f.local[ns][name] = true
		case f.local[ns] != nil:
			delete(f.local[ns], name)
			if len(f.local[ns]) == 0 {
				delete(f.local, ns)
				delete(f.stats, ns)
			}
		}
	}
	if f.local[ns] != nil && (kind == kindPods || kind == kindLinks || kind == kindAnnounce) {
		f.queue.add(ns, false)
	}
}

// linkChanged follows a link's event: a deleted link is kept for the
// reconcile loop (its ends here are removed) and a link with an end on
// this host whose state changed gets its Event.
func (f *Follower) linkChanged(ev store.Event, ns, id string, old store.LinkRecord, had bool) {
	key := ns + "/" + id
	if ev.Type == store.Delete {
		_, said := f.said[key]
		delete(f.said, key)
		if had && f.m.hasLocalEnd(ns, &old) {
			f.m.cache.noteRemoved(ns, old)
			if said {
				f.m.linkEvents(ns, &old, ReasonLinkRemoved)
			}
		}
		return
	}
	var rec store.LinkRecord
	if store.Decode(ev.KV, &rec) != nil || !f.m.hasLocalEnd(ns, &rec) {
		return
	}
	prev, said := f.said[key]
	f.said[key] = rec.State
	if said && prev == rec.State {
		return
	}
	switch rec.State {
	case store.LinkWired:
		f.m.linkEvents(ns, &rec, ReasonLinkWired)
	case store.LinkFailed:
		f.m.linkEvents(ns, &rec, ReasonLinkFailed)
	}
}

// podChanged enqueues the namespace of a pod of this host whose
// Kubernetes labels or annotations changed.
func (f *Follower) podChanged(ns, name string) {
	f.mu.Lock()
	local := f.local[ns][name]
	f.mu.Unlock()
	if local {
		f.queue.add(ns, false)
	}
}

// work reconciles the namespaces taken from the queue ("" sweeps the
// tombstones) until ctx ends.
func (f *Follower) work(ctx context.Context) {
	for {
		ns, full, ok := f.queue.take(ctx)
		if !ok {
			return
		}
		if ns == "" {
			if err := f.m.SweepTombstones(ctx); err != nil {
				f.m.log.Warn("tombstones", "err", err)
			}
			continue
		}
		st, err := f.m.Reconcile(ctx, ns, full)
		if err != nil {
			f.m.log.Warn("reconcile", "namespace", ns, "err", err)
		}
		f.mu.Lock()
		f.stats[ns] = st
		f.mu.Unlock()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// queue is a set of namespaces to reconcile, each at most once however
// many events name it; full sticks until the namespace is taken.
type queue struct {
	mu    sync.Mutex
	order []string
	set   map[string]bool // namespace -> full
	ready chan struct{}
}

func newQueue() *queue {
	return &queue{set: map[string]bool{}, ready: make(chan struct{}, 1)}
}

func (q *queue) add(ns string, full bool) {
	q.mu.Lock()
	if cur, ok := q.set[ns]; ok {
		q.set[ns] = cur || full
	} else {
		q.set[ns] = full
		q.order = append(q.order, ns)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) take(ctx context.Context) (string, bool, bool) {
	for {
		q.mu.Lock()
		if len(q.order) > 0 {
			ns := q.order[0]
			q.order = q.order[1:]
			full := q.set[ns]
			delete(q.set, ns)
			q.mu.Unlock()
			return ns, full, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return "", false, false
		}
	}
}
