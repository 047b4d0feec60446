package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// nextEvent returns the next event of ch or fails the test after within.
func nextEvent(t testing.TB, ch <-chan Event, within time.Duration) Event {
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
	return Event{}
}

// wantEvent checks the next event's type and key, within 10s.
func wantEvent(t testing.TB, ch <-chan Event, typ EventType, key string) Event {
	t.Helper()
	return wantEventWithin(t, ch, typ, key, 10*time.Second)
}

func wantEventWithin(t testing.TB, ch <-chan Event, typ EventType, key string, within time.Duration) Event {
	t.Helper()
	ev := nextEvent(t, ch, within)
	if ev.Err != nil || ev.Type != typ || ev.KV.Key != key {
		t.Fatalf("event = %v %s (err %v), want %v %s", ev.Type, ev.KV.Key, ev.Err, typ, key)
	}
	return ev
}

func TestWatchSendsRecursiveEventsAfterRevision(t *testing.T) {
	eachAPI(t, func(t *testing.T, _ *testenv.Etcd, s Store, k Keys) {
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
		ev := wantEvent(t, ch, Put, dir+"/deep/a")
		if string(ev.KV.Value) != "1" || ev.KV.Version != put.Version {
			t.Fatalf("put event %+v, want value 1 version %d", ev.KV, put.Version)
		}
		del := wantEvent(t, ch, Delete, dir+"/before")
		if del.KV.Value != nil || del.KV.Version <= put.Version {
			t.Fatalf("delete event %+v", del.KV)
		}
		_, err = s.Create(ctx, dir+"/live", []byte("2"), 0)
		mustOK(t, "create", err)
		wantEvent(t, ch, Put, dir+"/live")
	})
}

func TestWatchReportsDirDeleteAsKeyDeletes(t *testing.T) {
	eachAPI(t, func(t *testing.T, _ *testenv.Etcd, s Store, k Keys) {
		ctx := tctx(t)
		dir := k.Links("ns")
		_, err := s.Put(ctx, dir+"/a", []byte("1"))
		mustOK(t, "put", err)
		_, rev, err := s.List(ctx, dir)
		mustOK(t, "list", err)
		ch := s.Watch(ctx, k.Links(""), rev)
		_, err = s.Put(ctx, dir+"/sub/b", []byte("2"))
		mustOK(t, "put", err)
		wantEvent(t, ch, Put, dir+"/sub/b")
		mustOK(t, "delete dir", s.DeleteDir(ctx, dir))
		wantEvent(t, ch, Delete, dir+"/a")
		wantEvent(t, ch, Delete, dir+"/sub/b")
	})
}

func TestWatchClosesWhenContextEnds(t *testing.T) {
	eachAPI(t, func(t *testing.T, _ *testenv.Etcd, s Store, k Keys) {
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

func TestWatchResumesAcrossEtcdRestart(t *testing.T) {
	e := testenv.StartEtcd(t)
	prefix := "/" + testenv.UniqueName("rt")
	k := Keys{Prefix: prefix}
	ctx := tctx(t)
	watches := map[string]<-chan Event{}
	stores := map[string]Store{}
	for _, api := range apis {
		// Timeout 500ms: the v2 long poll is renewed every 5s, which is how
		// a v2 watch notices that an in-process etcd was stopped (a real
		// etcd's exit resets the connection at once).
		s := newStore(t, Config{Endpoints: []string{e.URL}, API: api, Prefix: prefix, Timeout: 500 * time.Millisecond})
		stores[api] = s
		watches[api] = s.Watch(ctx, k.Pods(api), 0)
		_, err := s.Put(ctx, k.Pod(api, "before"), []byte("1"))
		mustOK(t, api+" put", err)
		wantEvent(t, watches[api], Put, k.Pod(api, "before"))
	}
	e.Restart()
	for _, api := range apis {
		putUntilAvailable(t, stores[api], k.Pod(api, "after"))
		wantEventWithin(t, watches[api], Put, k.Pod(api, "after"), 30*time.Second)
	}
}

// putUntilAvailable writes key, retrying while etcd is still coming back.
func putUntilAvailable(t *testing.T, s Store, key string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Put(context.Background(), key, []byte("after"))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("put %s after restart: %v", key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWatchOfCompactedHistorySendsErrCompacted(t *testing.T) {
	eachAPI(t, func(t *testing.T, e *testenv.Etcd, s Store, k Keys) {
		ctx := tctx(t)
		first, err := s.Put(ctx, k.Pod("ns", "first"), []byte("1"))
		mustOK(t, "put", err)
		if isV3(s) {
			_, err = s.Put(ctx, k.Pod("ns", "second"), []byte("2"))
			mustOK(t, "put", err)
			last, err := s.Put(ctx, k.Pod("ns", "last"), []byte("3"))
			mustOK(t, "put", err)
			compact(t, e.URL, last.Version)
		} else {
			overflowV2History(t, s, k)
		}
		ev := nextEvent(t, s.Watch(ctx, k.Pods("ns"), first.Version), 10*time.Second)
		wantErr(t, "watch from compacted revision", ev.Err, ErrCompacted)
	})
}

func isV3(s Store) bool { _, ok := s.(*v3Store); return ok }

func compact(t *testing.T, url string, rev int64) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	mustOK(t, "v3 client", err)
	defer c.Close()
	_, err = c.Compact(tctx(t), rev, clientv3.WithCompactPhysical())
	mustOK(t, "compact", err)
}

// overflowV2History writes more than the 1000 events etcd v2 keeps.
func overflowV2History(t *testing.T, s Store, k Keys) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 55; i++ {
				if _, err := s.Put(context.Background(), k.Pod("filler", fmt.Sprint(w)), []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("filler put: %v", err)
	}
}
