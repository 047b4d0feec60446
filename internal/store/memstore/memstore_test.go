package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/memstore"
)

const prefix = "/ratchet"

var keys = store.Keys{Prefix: prefix}

func newStore(t *testing.T, opts ...memstore.Option) *memstore.Store {
	t.Helper()
	s := memstore.New(prefix, opts...)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// must fails t on an error, else returns the KV: must(t)(s.Put(...)).
func must(t *testing.T) func(store.KV, error) store.KV {
	return func(kv store.KV, err error) store.KV {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
}

func next(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return store.Event{}
}

func TestAdvanceExpiresTTLKeyWithDeleteEvent(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newStore(t, memstore.WithClock(func() time.Time { return start }))
	key := keys.Agent("a")
	kv := must(t)(s.Create(ctx(t), key, []byte("lock"), 1500*time.Millisecond))
	ch := s.Watch(ctx(t), keys.Agents(), kv.Version)
	s.Advance(1900 * time.Millisecond) // TTLs round up to 2s
	must(t)(s.Get(ctx(t), key))
	s.Advance(100 * time.Millisecond)
	ev := next(t, ch)
	if ev.Type != store.Delete || ev.KV.Key != key || ev.KV.Version != kv.Version+1 {
		t.Fatalf("event %+v, want delete of %s at %d", ev, key, kv.Version+1)
	}
	if _, err := s.Get(ctx(t), key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after expiry: %v", err)
	}
}

func TestPutMakesTTLKeyPermanent(t *testing.T) {
	s := newStore(t, memstore.WithClock(time.Now))
	key := keys.Agent("a")
	must(t)(s.Create(ctx(t), key, nil, time.Second))
	must(t)(s.Put(ctx(t), key, []byte("kept")))
	s.Advance(time.Hour)
	if kv := must(t)(s.Get(ctx(t), key)); string(kv.Value) != "kept" {
		t.Fatalf("get = %+v", kv)
	}
}

func TestFailNextFailsOnceWithoutEffect(t *testing.T) {
	s := newStore(t)
	key := keys.Pod("default", "a")
	kv := must(t)(s.Create(ctx(t), key, []byte("1"), 0))
	s.FailNext(memstore.OpUpdate, key, store.ErrConflict)
	if _, err := s.Update(ctx(t), key, []byte("2"), kv.Version); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("injected update: %v, want ErrConflict", err)
	}
	if got := must(t)(s.Get(ctx(t), key)); got.Version != kv.Version {
		t.Fatalf("failed update changed the key: %+v", got)
	}
	must(t)(s.Update(ctx(t), key, []byte("2"), kv.Version))
	if n := s.Ops()[memstore.OpUpdate]; n != 2 {
		t.Fatalf("Ops()[update] = %d, want 2", n)
	}
}

func TestOnNextMakesARealConflict(t *testing.T) {
	s := newStore(t)
	key := keys.Link("default", "a.x--b.y")
	kv := must(t)(s.Create(ctx(t), key, []byte("1"), 0))
	s.OnNext(memstore.OpUpdate, key, func() { must(t)(s.Put(ctx(t), key, []byte("racer"))) })
	if _, err := s.Update(ctx(t), key, []byte("2"), kv.Version); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update after a racing put: %v, want ErrConflict", err)
	}
}

func TestUnavailableFailsCallsAndHoldsWatches(t *testing.T) {
	s := newStore(t)
	ch := s.Watch(ctx(t), keys.Pods(""), 0)
	s.SetUnavailable(true)
	if err := s.Ping(ctx(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ping: %v, want ErrUnavailable", err)
	}
	if _, err := s.Put(ctx(t), keys.Pod("ns", "a"), nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("put: %v, want ErrUnavailable", err)
	}
	s.SetUnavailable(false)
	must(t)(s.Put(ctx(t), keys.Pod("ns", "a"), nil))
	if ev := next(t, ch); ev.KV.Key != keys.Pod("ns", "a") {
		t.Fatalf("event %+v", ev)
	}
}

func TestHistoryBeyondLimitIsCompacted(t *testing.T) {
	s := newStore(t, memstore.WithHistory(3))
	first := must(t)(s.Put(ctx(t), keys.Pod("ns", "0"), nil))
	for i := 1; i < 5; i++ {
		must(t)(s.Put(ctx(t), keys.Pod("ns", fmt.Sprint(i)), nil))
	}
	ev := next(t, s.Watch(ctx(t), keys.Pods(""), first.Version))
	if !errors.Is(ev.Err, store.ErrCompacted) {
		t.Fatalf("watch from dropped history: %+v, want ErrCompacted", ev)
	}
	ch := s.Watch(ctx(t), keys.Pods(""), first.Version+1)
	if ev := next(t, ch); ev.Err != nil || ev.KV.Key != keys.Pod("ns", "2") {
		t.Fatalf("watch from kept history: %+v, want put of ns/2", ev)
	}
}

func TestSlowWatcherDoesNotBlockWriters(t *testing.T) {
	s := newStore(t)
	ch := s.Watch(ctx(t), keys.Pods(""), 0)
	for i := range 500 {
		must(t)(s.Put(ctx(t), keys.Pod("ns", fmt.Sprint(i)), nil))
	}
	for i := range 500 {
		if ev := next(t, ch); ev.KV.Key != keys.Pod("ns", fmt.Sprint(i)) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

func TestCloseEndsWatchesAndCalls(t *testing.T) {
	s := memstore.New(prefix)
	ch := s.Watch(context.Background(), keys.Pods(""), 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("event after Close")
	}
	if _, err := s.Get(ctx(t), keys.Pod("ns", "a")); !errors.Is(err, memstore.ErrClosed) {
		t.Fatalf("get after Close: %v, want ErrClosed", err)
	}
}
