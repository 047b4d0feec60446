package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// nextEvent returns the next event of ch or fails the test after within.
func nextEvent(t testing.TB, ch <-chan store.Event, within time.Duration) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no watch event within %v", within)
	}
	return store.Event{}
}

// wantEvent checks the next event's type and key, within 10s.
func wantEvent(t testing.TB, ch <-chan store.Event, typ store.EventType, key string) store.Event {
	t.Helper()
	return wantEventWithin(t, ch, typ, key, 10*time.Second)
}

func wantEventWithin(t testing.TB, ch <-chan store.Event, typ store.EventType, key string, within time.Duration) store.Event {
	t.Helper()
	ev := nextEvent(t, ch, within)
	if ev.Err != nil || ev.Type != typ || ev.KV.Key != key {
		t.Fatalf("event = %v %s (err %v), want %v %s", ev.Type, ev.KV.Key, ev.Err, typ, key)
	}
	return ev
}

func TestWatchSendsRecursiveEventsAfterRevision(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		dir := k.Pods("ns")
		before, err := s.Put(ctx, dir+"/before", []byte("0"))
		mustOK(t, "put", err)
		_, err = s.Put(ctx, k.Pod("other", "x"), []byte("outside"))
		mustOK(t, "put outside", err)
		put, err := s.Put(ctx, dir+"/deep/a", []byte("1"))
		mustOK(t, "put", err)
		mustOK(t, "delete", s.Delete(ctx, dir+"/before", 0))
		ch := s.Watch(ctx, dir, before.Version)
		ev := wantEvent(t, ch, store.Put, dir+"/deep/a")
		if string(ev.KV.Value) != "1" || ev.KV.Version != put.Version {
			t.Fatalf("put event %+v, want value 1 version %d", ev.KV, put.Version)
		}
		del := wantEvent(t, ch, store.Delete, dir+"/before")
		if del.KV.Value != nil || del.KV.Version <= put.Version {
			t.Fatalf("delete event %+v", del.KV)
		}
		_, err = s.Create(ctx, dir+"/live", []byte("2"), 0)
		mustOK(t, "create", err)
		wantEvent(t, ch, store.Put, dir+"/live")
	})
}

func TestWatchReportsDirDeleteAsKeyDeletes(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		dir := k.Links("ns")
		_, err := s.Put(ctx, dir+"/a", []byte("1"))
		mustOK(t, "put", err)
		_, rev, err := s.List(ctx, dir)
		mustOK(t, "list", err)
		ch := s.Watch(ctx, k.Links(""), rev)
		_, err = s.Put(ctx, dir+"/sub/b", []byte("2"))
		mustOK(t, "put", err)
		wantEvent(t, ch, store.Put, dir+"/sub/b")
		mustOK(t, "delete dir", s.DeleteDir(ctx, dir))
		wantEvent(t, ch, store.Delete, dir+"/a")
		wantEvent(t, ch, store.Delete, dir+"/sub/b")
	})
}

func TestWatchClosesWhenContextEnds(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx, cancel := context.WithCancel(tctx(t))
		ch := s.Watch(ctx, k.Pods(""), 0)
		cancel()
		select {
		case ev, ok := <-ch:
			if ok {
				t.Fatalf("event after cancel: %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch channel not closed 5s after cancel")
		}
	})
}

func TestWatchResumesAcrossOutage(t *testing.T) {
	eachBackendInTurn(t, func(t *testing.T, b *backend, _ store.Store, k store.Keys) {
		// Timeout 500ms: the v2 long poll is renewed every 5s, which is how
		// a v2 watch notices that an in-process etcd was stopped (a real
		// etcd's exit resets the connection at once).
		s := b.open(t, k.Prefix, 500*time.Millisecond)
		ctx := tctx(t)
		ch := s.Watch(ctx, k.Pods("ns"), 0)
		_, err := s.Put(ctx, k.Pod("ns", "before"), []byte("1"))
		mustOK(t, "put", err)
		wantEvent(t, ch, store.Put, k.Pod("ns", "before"))
		b.outage(t)
		putUntilAvailable(t, s, k.Pod("ns", "after"))
		wantEventWithin(t, ch, store.Put, k.Pod("ns", "after"), 30*time.Second)
	})
}

// putUntilAvailable writes key, retrying while etcd is still coming back.
func putUntilAvailable(t *testing.T, s store.Store, key string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Put(context.Background(), key, []byte("after"))
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("put %s after restart: %v", key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWatchOfCompactedHistorySendsErrCompacted(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		first, err := s.Put(ctx, k.Pod("ns", "first"), []byte("1"))
		mustOK(t, "put", err)
		b.forget(t, s, k)
		ev := nextEvent(t, s.Watch(ctx, k.Pods("ns"), first.Version), 10*time.Second)
		wantErr(t, "watch from compacted revision", ev.Err, store.ErrCompacted)
	})
}
