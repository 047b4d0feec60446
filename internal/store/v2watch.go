package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	client "go.etcd.io/etcd/client/v2"
)

// Reconnect delays of watches whose etcd went away.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 2 * time.Second
)

// pollTimeout bounds one v2 watch long poll: 10×Timeout, in [5s, 60s].
func (s *v2Store) pollTimeout() time.Duration {
	return min(max(10*s.cfg.Timeout, 5*time.Second), time.Minute)
}

// Watch implements Store with a recursive v2 Watcher. The watcher keeps its
// wait index across errors, so an etcd restart is ridden out by retrying.
// A v2 directory delete (or expiry) is one event for the directory; it is
// turned into a Delete for every key the watch knows below it, as v3 does.
func (s *v2Store) Watch(ctx context.Context, dir string, afterRev int64) <-chan Event {
	out := make(chan Event, 16)
	if err := checkKey(s.cfg.Prefix, dir); err != nil {
		out <- Event{Err: fmt.Errorf("watch: %w", err)}
		close(out)
		return out
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	w := &v2Watch{s: s, dir: dir, out: out, known: map[string]bool{}}
	// List now, so that afterRev 0 means from this call on; when etcd is
	// unreachable, run retries and starts from when it is reached.
	w.listed = w.list(ctx) == nil
	s.watches.Add(1)
	go func() {
		defer s.watches.Done()
		defer close(out)
		defer cancel()
		defer stop()
		if err := w.run(ctx, afterRev); err != nil && ctx.Err() == nil {
			send(ctx, out, Event{Err: fmt.Errorf("watch %s: %w", dir, err)})
		}
	}()
	return out
}

// v2Watch is one running v2 watch.
type v2Watch struct {
	s   *v2Store
	dir string
	out chan<- Event
	// known are the leaf keys below dir the watch has seen exist, to
	// expand a directory delete into per-key Delete events.
	known map[string]bool
	// listed: known is filled and index is the revision of that listing.
	listed bool
	index  int64
}

// run sends events until ctx ends (nil) or the watch breaks (the error).
func (w *v2Watch) run(ctx context.Context, afterRev int64) error {
	if err := w.prime(ctx); err != nil {
		return err
	}
	idx := w.index
	if afterRev > 0 {
		idx = afterRev
	}
	watcher := w.s.kapi.Watcher(w.dir, &client.WatcherOptions{AfterIndex: uint64(idx), Recursive: true})
	delay := watchRetryMin
	// The v2 client starts a request even on an ended context.
	for ctx.Err() == nil {
		// Bound each long poll: a stopped or partitioned etcd may leave it
		// open without an error; a fresh poll keeps the wait index.
		pctx, pcancel := context.WithTimeout(ctx, w.s.pollTimeout())
		resp, err := watcher.Next(pctx)
		pcancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			if err = w.retryable(err); err != nil {
				return err
			}
			var ok bool
			if delay, ok = backoff(ctx, delay, watchRetryMax); !ok {
				return nil
			}
			continue
		}
		delay = watchRetryMin
		for _, ev := range w.events(resp) {
			if !send(ctx, w.out, ev) {
				return nil
			}
		}
	}
	return nil
}

// retryable returns nil for an error the watch rides out (etcd down or
// restarted), else the mapped error.
func (w *v2Watch) retryable(err error) error {
	var ee client.Error
	if errors.As(err, &ee) && ee.Code == client.ErrorCodeWatcherCleared {
		return nil
	}
	mapped := w.s.mapErr(err)
	if errors.Is(mapped, ErrUnavailable) {
		return nil
	}
	return mapped
}

// list fills known with the keys below dir and index with the revision.
func (w *v2Watch) list(ctx context.Context) error {
	kvs, idx, err := w.s.List(ctx, w.dir)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		w.known[kv.Key] = true
	}
	w.index = idx
	return nil
}

// prime lists unless Watch did, retrying while etcd is unavailable.
func (w *v2Watch) prime(ctx context.Context) error {
	delay := watchRetryMin
	for !w.listed && ctx.Err() == nil {
		err := w.list(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		var ok bool
		if delay, ok = backoff(ctx, delay, watchRetryMax); !ok {
			return ctx.Err()
		}
	}
	return nil
}

// events converts one v2 watch response into Events.
func (w *v2Watch) events(resp *client.Response) []Event {
	n := resp.Node
	if n == nil || !strings.HasPrefix(n.Key, w.dir+"/") {
		return nil
	}
	switch resp.Action {
	case "delete", "compareAndDelete", "expire":
		if n.Dir {
			return w.dirGone(n)
		}
		delete(w.known, n.Key)
		return []Event{{Type: Delete, KV: KV{Key: n.Key, Version: int64(n.ModifiedIndex)}}}
	default: // set, create, update, compareAndSwap
		if n.Dir {
			return nil
		}
		w.known[n.Key] = true
		return []Event{{Type: Put, KV: kvOf(n)}}
	}
}

// dirGone expands the delete of directory n into per-key Deletes, sorted.
func (w *v2Watch) dirGone(n *client.Node) []Event {
	var keys []string
	for k := range w.known {
		if strings.HasPrefix(k, n.Key+"/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	evs := make([]Event, 0, len(keys))
	for _, k := range keys {
		delete(w.known, k)
		evs = append(evs, Event{Type: Delete, KV: KV{Key: k, Version: int64(n.ModifiedIndex)}})
	}
	return evs
}
