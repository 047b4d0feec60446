package store_test

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// A TTL'd key's lease goes with the key: deleting the key, or overwriting
// it (which makes it permanent), leaves no lease in etcd.
func TestV3DeletedOrOverwrittenKeyLeavesNoLease(t *testing.T) {
	e := testenv.StartEtcd(t)
	prefix := "/" + testenv.UniqueName("rt")
	s := newStore(t, store.Config{Endpoints: []string{e.URL}, API: store.APIv3, Prefix: prefix})
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{e.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	mustOK(t, "v3 client", err)
	t.Cleanup(func() { _ = raw.Close() })
	k := store.Keys{Prefix: prefix}
	for _, tc := range []struct {
		name string
		op   func(key string, kv store.KV) error
	}{
		{"delete", func(key string, _ store.KV) error { return s.Delete(tctx(t), key, 0) }},
		{"delete at version", func(key string, kv store.KV) error { return s.Delete(tctx(t), key, kv.Version) }},
		{"delete dir", func(_ string, _ store.KV) error { return s.DeleteDir(tctx(t), k.Pods("ns")) }},
		{"update", func(key string, kv store.KV) error {
			_, err := s.Update(tctx(t), key, []byte("v2"), kv.Version)
			return err
		}},
		{"put", func(key string, _ store.KV) error { _, err := s.Put(tctx(t), key, []byte("v2")); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := k.Pod("ns", testenv.UniqueName("p"))
			kv, err := s.Create(tctx(t), key, []byte("v1"), time.Minute)
			mustOK(t, "create with TTL", err)
			mustOK(t, tc.name, tc.op(key, kv))
			leases, err := raw.Leases(tctx(t))
			mustOK(t, "list leases", err)
			if len(leases.Leases) != 0 {
				t.Errorf("after create with TTL and %s: %d leases left in etcd, want 0", tc.name, len(leases.Leases))
				for _, l := range leases.Leases {
					_, _ = raw.Revoke(tctx(t), l.ID)
				}
			}
		})
	}
}
