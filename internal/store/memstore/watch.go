package memstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// watcher is one Watch: writers append to its queue (never blocking) and
// its goroutine moves the queue to out.
type watcher struct {
	dir    string
	mu     sync.Mutex
	queue  []store.Event
	signal chan struct{} // capacity 1: the queue grew
}

func (w *watcher) wants(key string) bool { return strings.HasPrefix(key, w.dir+"/") }

func (w *watcher) push(evs ...store.Event) {
	w.mu.Lock()
	w.queue = append(w.queue, evs...)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *watcher) take() []store.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	evs := w.queue
	w.queue = nil
	return evs
}

// emitLocked records ev in the history (dropping the oldest beyond the
// limit, which compacts up to its revision) and queues it for the watchers
// of its key.
func (s *Store) emitLocked(ev store.Event) {
	s.events = append(s.events, ev)
	if n := len(s.events) - s.history; n > 0 {
		s.compacted = max(s.compacted, s.events[n-1].KV.Version)
		// Reslice: append copies the kept events when it next grows the
		// array, so trimming costs O(1) amortised and memory stays bounded.
		s.events = s.events[n:]
	}
	for w := range s.watchers {
		if w.wants(ev.KV.Key) {
			w.push(ev)
		}
	}
}

// Watch implements store.Store: the changes below dir strictly after
// afterRev (0: from now), from the kept history and then live. It sends an
// Event with store.ErrCompacted (then closes) when afterRev is older than
// the history. The channel closes when ctx ends or the store is closed.
func (s *Store) Watch(ctx context.Context, dir string, afterRev int64) <-chan store.Event {
	out := make(chan store.Event, 16)
	fail := func(err error) <-chan store.Event {
		out <- store.Event{Err: err}
		close(out)
		return out
	}
	if err := store.CheckKey(s.prefix, dir); err != nil {
		return fail(fmt.Errorf("watch: %w", err))
	}
	s.faults.runHook(OpWatch, dir)
	if err := s.faults.injected(OpWatch, dir); err != nil {
		return fail(fmt.Errorf("watch %s: %w", dir, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed() {
		close(out)
		return out
	}
	if afterRev > 0 && afterRev < s.compacted {
		return fail(fmt.Errorf("watch %s after revision %d (compacted to %d): %w",
			dir, afterRev, s.compacted, store.ErrCompacted))
	}
	w := &watcher{dir: dir, signal: make(chan struct{}, 1)}
	for _, ev := range s.events {
		if afterRev > 0 && ev.KV.Version > afterRev && w.wants(ev.KV.Key) {
			w.push(ev)
		}
	}
	s.watchers[w] = struct{}{}
	s.wg.Add(1)
	go s.serve(ctx, w, out)
	return out
}

// serve moves w's queue to out, holding it while the store is unavailable,
// until ctx ends or the store closes.
func (s *Store) serve(ctx context.Context, w *watcher, out chan<- store.Event) {
	defer s.wg.Done()
	defer close(out)
	defer func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-w.signal:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
		select {
		case <-s.faults.upChan():
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
		for _, ev := range w.take() {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}
}
