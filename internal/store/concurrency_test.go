package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

func TestConcurrentCreateHasOneWinner(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx, key := tctx(t), k.Agent("a")
		const n = 50
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.Create(ctx, key, []byte(fmt.Sprint(i)), 0)
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, store.ErrExists):
				t.Errorf("create %d: %v", i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("%d creates won, want exactly 1", winners)
		}
	})
}

func TestConcurrentAllocateVNIAreDistinct(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		const n, lo, hi = 100, 100, 299 // 200 VNIs: many hash collisions
		vnis := make([]uint32, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				vnis[i], errs[i] = store.AllocateVNI(ctx, s, k, owner(k, i), lo, hi)
			}()
		}
		wg.Wait()
		seen := map[uint32]int{}
		for i, v := range vnis {
			mustOK(t, "allocate "+owner(k, i), errs[i])
			if v < lo || v > hi {
				t.Errorf("owner %d got VNI %d outside [%d, %d]", i, v, lo, hi)
			}
			if j, dup := seen[v]; dup {
				t.Errorf("VNI %d given to owners %d and %d", v, j, i)
			}
			seen[v] = i
		}
		again, err := store.AllocateVNI(ctx, s, k, owner(k, 7), lo, hi)
		if err != nil || again != vnis[7] {
			t.Fatalf("second allocation for owner 7 = %d, %v; want %d (idempotent)", again, err, vnis[7])
		}
	})
}

func owner(k store.Keys, i int) string {
	return k.Link("default", store.LinkID("p", "in", fmt.Sprint("q", i), "in"))
}

func TestReleaseVNIOnlyByOwner(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		v, err := store.AllocateVNI(ctx, s, k, "link-a", 10, 10)
		mustOK(t, "allocate", err)
		if _, err := store.AllocateVNI(ctx, s, k, "link-b", 10, 10); err == nil {
			t.Fatal("allocation in a full range succeeded")
		}
		mustOK(t, "release by another owner", store.ReleaseVNI(ctx, s, k, v, "link-b"))
		kv, err := s.Get(ctx, k.VNI(v))
		if err != nil || string(kv.Value) != "link-a" {
			t.Fatalf("reservation after foreign release = %+v, %v; want link-a's", kv, err)
		}
		mustOK(t, "release by owner", store.ReleaseVNI(ctx, s, k, v, "link-a"))
		mustOK(t, "release twice", store.ReleaseVNI(ctx, s, k, v, "link-a"))
		if got, err := store.AllocateVNI(ctx, s, k, "link-b", 10, 10); err != nil || got != v {
			t.Fatalf("allocate after release = %d, %v; want %d", got, err, v)
		}
	})
}

func TestCreateWithTTLExpires(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx, key := tctx(t), k.Agent("ttl")
		kv, err := s.Create(ctx, key, []byte("lock"), time.Second)
		mustOK(t, "create with ttl", err)
		ch := s.Watch(ctx, k.Agents(), kv.Version)
		start := time.Now()
		// v3 leases last at least etcd's minimum lease TTL (2s here).
		wantEventWithin(t, ch, store.Delete, key, 10*time.Second)
		t.Logf("expired after %v", time.Since(start).Round(10*time.Millisecond))
		_, err = s.Get(ctx, key)
		wantErr(t, "get after expiry", err, store.ErrNotFound)
		_, err = s.Create(ctx, key, []byte("again"), 0)
		mustOK(t, "create after expiry", err)
	})
}
