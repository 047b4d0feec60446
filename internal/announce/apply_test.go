package announce

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// eachStore starts one embedded etcd and runs fn once per etcd API, in
// subtests named by the API, with a store on a prefix of its own.
func eachStore(t *testing.T, fn func(t *testing.T, kv store.Store, k store.Keys)) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs an embedded etcd")
	}
	e := testenv.StartEtcd(t)
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		k := store.Keys{Prefix: "/t" + api}
		kv, err := store.New(store.Config{Endpoints: []string{e.URL}, API: api, Prefix: k.Prefix, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kv.Close() })
		fn(t, kv, k)
	})
}

func versions(t *testing.T, kv store.Store, dir string) map[string]int64 {
	t.Helper()
	kvs, _, err := kv.List(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range kvs {
		out[e.Key] = e.Version
	}
	return out
}

func actions(changes []Change) []Action {
	var out []Action
	for _, c := range changes {
		out = append(out, c.Action)
	}
	return out
}

func TestApplyTwiceChangesNothingAndDeleteRemovesOnlyEqualRecords(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, kv store.Store, k store.Keys) {
		recs := mustRecords(t, chainYAML(t))
		if ch, err := Apply(ctx, kv, k, recs); err != nil || len(ch) != 4 || ch[0].Action != Created {
			t.Fatalf("first Apply: %v, %v", actions(ch), err)
		}
		before := versions(t, kv, k.Announces(""))
		ch, err := Apply(ctx, kv, k, recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ch {
			if c.Action != Unchanged {
				t.Errorf("second Apply: %+v", c)
			}
		}
		if after := versions(t, kv, k.Announces("")); len(after) != 4 || !equalVersions(before, after) {
			t.Errorf("versions changed: %v -> %v", before, after)
		}
		// A changed input updates only the record that differs.
		recs[0].Labels["ratchet.public_ip"] = "2.2.2.2"
		if ch, _ := Apply(ctx, kv, k, recs); ch[0].Action != Updated || ch[1].Action != Unchanged {
			t.Errorf("Apply of one changed record: %v", actions(ch))
		}
		// Delete keeps a record someone else changed, unless forced.
		recs[0].Labels["ratchet.public_ip"] = "3.3.3.3"
		ch, err = Delete(ctx, kv, k, recs, false)
		if err != nil || ch[0].Action != Kept || ch[1].Action != Deleted {
			t.Fatalf("Delete: %v, %v", actions(ch), err)
		}
		ch, err = Delete(ctx, kv, k, recs, true)
		if err != nil || ch[0].Action != Deleted || ch[1].Action != Absent {
			t.Fatalf("Delete --force: %v, %v", actions(ch), err)
		}
		if left := versions(t, kv, k.Announces("")); len(left) != 0 {
			t.Errorf("left: %v", left)
		}
	})
}

func equalVersions(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// failingStore fails the write after the first n, once.
type failingStore struct {
	store.Store
	n int
}

var errInjected = errors.New("injected failure")

func (f *failingStore) write() error {
	f.n--
	if f.n == -1 {
		return errInjected
	}
	return nil
}

func (f *failingStore) Create(ctx context.Context, key string, val []byte, ttl time.Duration) (store.KV, error) {
	if err := f.write(); err != nil {
		return store.KV{}, err
	}
	return f.Store.Create(ctx, key, val, ttl)
}

func (f *failingStore) Update(ctx context.Context, key string, val []byte, version int64) (store.KV, error) {
	if err := f.write(); err != nil {
		return store.KV{}, err
	}
	return f.Store.Update(ctx, key, val, version)
}

func TestFailedApplyUndoesItsWrites(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, kv store.Store, k store.Keys) {
		recs := mustRecords(t, chainYAML(t))
		// An earlier value of quagga-a's record, which the run updates
		// and must restore.
		old := map[string]string{"ratchet": "true", "ratchet.pod_name": "quagga-a"}
		if _, err := store.PutJSON(ctx, kv, k.Announce("default", "quagga-a"), old); err != nil {
			t.Fatal(err)
		}
		_, err := Apply(ctx, &failingStore{Store: kv, n: 3}, k, recs)
		if !errors.Is(err, errInjected) {
			t.Fatalf("err = %v, want the injected failure", err)
		}
		left := versions(t, kv, k.Announces(""))
		if len(left) != 1 {
			t.Fatalf("records left after the failed run: %v", left)
		}
		got, _, err := store.GetAnnounce(ctx, kv, k, "default", "quagga-a")
		if err != nil || len(got) != 2 || got["ratchet.pod_name"] != "quagga-a" {
			t.Errorf("quagga-a not restored: %v, %v", got, err)
		}
	})
}
