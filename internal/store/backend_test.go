package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/memstore"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// backend is one Store implementation the conformance tests run against,
// with the means to do to it what the real ones undergo.
type backend struct {
	name string
	// open returns a new store under prefix (timeout 0: the default).
	open func(t *testing.T, prefix string, timeout time.Duration) store.Store
	// outage makes the backend unreachable for a moment (etcd restarts);
	// it returns at once, before it is reachable again.
	outage func(t *testing.T)
	// forget makes the history of s up to now unavailable to watches.
	forget func(t *testing.T, s store.Store, k store.Keys)
}

// backends returns v2 and v3 on the etcd e, and memstore.
func backends(e *testenv.Etcd) []*backend {
	var bs []*backend
	for _, api := range testenv.APIs() {
		bs = append(bs, &backend{
			name: api,
			open: func(t *testing.T, prefix string, timeout time.Duration) store.Store {
				return newStore(t, store.Config{Endpoints: []string{e.URL}, API: api, Prefix: prefix, Timeout: timeout})
			},
			outage: func(*testing.T) { e.Restart() },
			forget: func(t *testing.T, s store.Store, k store.Keys) {
				if api == store.APIv3 {
					compact(t, e.URL, putTwice(t, s, k))
				} else {
					overflowV2History(t, s, k)
				}
			},
		})
	}
	return append(bs, memBackend())
}

// memBackend is memstore: an outage is SetUnavailable for half a second on
// every store it opened.
func memBackend() *backend {
	var mu sync.Mutex
	var opened []*memstore.Store
	return &backend{
		name: "mem",
		open: func(t *testing.T, prefix string, _ time.Duration) store.Store {
			s := memstore.New(prefix)
			t.Cleanup(func() { _ = s.Close() })
			mu.Lock()
			defer mu.Unlock()
			opened = append(opened, s)
			return s
		},
		outage: func(t *testing.T) {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range opened {
				s.SetUnavailable(true)
				lift := time.AfterFunc(500*time.Millisecond, func() { s.SetUnavailable(false) })
				t.Cleanup(func() { lift.Stop() })
			}
		},
		forget: func(t *testing.T, s store.Store, k store.Keys) {
			mustOK(t, "compact", s.(*memstore.Store).Compact(putTwice(t, s, k)))
		},
	}
}

// eachBackend starts one etcd and runs fn once per backend, in parallel
// subtests named by the backend, each with a store under its own prefix.
func eachBackend(t *testing.T, fn func(t *testing.T, b *backend, s store.Store, k store.Keys)) {
	t.Helper()
	forBackends(t, true, fn)
}

// eachBackendInTurn is eachBackend with the subtests one after another, for
// tests that disturb the shared etcd (outage).
func eachBackendInTurn(t *testing.T, fn func(t *testing.T, b *backend, s store.Store, k store.Keys)) {
	t.Helper()
	forBackends(t, false, fn)
}

func forBackends(t *testing.T, parallel bool, fn func(t *testing.T, b *backend, s store.Store, k store.Keys)) {
	t.Helper()
	for _, b := range backends(testenv.StartEtcd(t)) {
		t.Run(b.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			prefix := "/" + testenv.UniqueName("rt")
			fn(t, b, b.open(t, prefix, 0), store.Keys{Prefix: prefix})
		})
	}
}

// putTwice writes two more keys and returns the revision of the last.
func putTwice(t *testing.T, s store.Store, k store.Keys) int64 {
	t.Helper()
	_, err := s.Put(tctx(t), k.Pod("ns", "second"), []byte("2"))
	mustOK(t, "put", err)
	last, err := s.Put(tctx(t), k.Pod("ns", "last"), []byte("3"))
	mustOK(t, "put", err)
	return last.Version
}

func compact(t *testing.T, url string, rev int64) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	mustOK(t, "v3 client", err)
	defer c.Close()
	_, err = c.Compact(tctx(t), rev, clientv3.WithCompactPhysical())
	mustOK(t, "compact", err)
}

// overflowV2History writes more than the 1000 events etcd v2 keeps.
func overflowV2History(t *testing.T, s store.Store, k store.Keys) {
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
