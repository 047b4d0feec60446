package store_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t testing.TB, cfg store.Config) store.Store {
	t.Helper()
	s, err := store.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func mustOK(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestCreateOnlyIfAbsent(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx, key := tctx(t), k.Pod("default", "a")
		_, err := s.Get(ctx, key)
		wantErr(t, "get before create", err, store.ErrNotFound)
		kv, err := s.Create(ctx, key, []byte("one"), 0)
		mustOK(t, "create", err)
		if kv.Key != key || string(kv.Value) != "one" || kv.Version <= 0 {
			t.Fatalf("create returned %+v", kv)
		}
		_, err = s.Create(ctx, key, []byte("two"), 0)
		wantErr(t, "second create", err, store.ErrExists)
		got, err := s.Get(ctx, key)
		mustOK(t, "get", err)
		if !reflect.DeepEqual(got, kv) {
			t.Fatalf("get = %+v, want %+v", got, kv)
		}
	})
}

func TestUpdateComparesVersion(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx, key := tctx(t), k.Link("default", store.LinkID("a", "in1", "b", "in2"))
		v1, err := s.Create(ctx, key, []byte("1"), 0)
		mustOK(t, "create", err)
		v2, err := s.Update(ctx, key, []byte("2"), v1.Version)
		mustOK(t, "update", err)
		if v2.Version <= v1.Version {
			t.Fatalf("version did not grow: %d then %d", v1.Version, v2.Version)
		}
		_, err = s.Update(ctx, key, []byte("stale"), v1.Version)
		wantErr(t, "update with stale version", err, store.ErrConflict)
		_, err = s.Update(ctx, k.Pod("default", "gone"), []byte("x"), v1.Version)
		wantErr(t, "update of missing key", err, store.ErrNotFound)
		v3, err := s.Put(ctx, key, []byte("3"))
		mustOK(t, "put", err)
		got, err := s.Get(ctx, key)
		mustOK(t, "get", err)
		if string(got.Value) != "3" || got.Version != v3.Version {
			t.Fatalf("get after put = %+v, want value 3 version %d", got, v3.Version)
		}
	})
}

func TestDeleteComparesVersion(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx, key := tctx(t), k.VNI(42)
		v1, err := s.Create(ctx, key, []byte("1"), 0)
		mustOK(t, "create", err)
		v2, err := s.Put(ctx, key, []byte("2"))
		mustOK(t, "put", err)
		wantErr(t, "delete with stale version", s.Delete(ctx, key, v1.Version), store.ErrConflict)
		mustOK(t, "delete with current version", s.Delete(ctx, key, v2.Version))
		wantErr(t, "delete again", s.Delete(ctx, key, 0), store.ErrNotFound)
		wantErr(t, "versioned delete of missing key", s.Delete(ctx, key, v2.Version), store.ErrNotFound)
		_, err = s.Put(ctx, key, []byte("3"))
		mustOK(t, "put", err)
		mustOK(t, "unconditional delete", s.Delete(ctx, key, 0))
	})
}

func TestListIsSortedLeavesBelowDir(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		dir := k.Links("ns")
		var last int64
		for _, key := range []string{dir + "/sub/c", dir + "/b", dir + "/a-b", dir + "/a/z", k.Links("ns2") + "/x"} {
			kv, err := s.Put(ctx, key, []byte(key))
			mustOK(t, "put", err)
			last = kv.Version
		}
		kvs, rev, err := s.List(ctx, dir)
		mustOK(t, "list", err)
		var keys []string
		for _, kv := range kvs {
			keys = append(keys, kv.Key)
			if string(kv.Value) != kv.Key || kv.Version <= 0 {
				t.Errorf("listed %+v", kv)
			}
		}
		want := []string{dir + "/a-b", dir + "/a/z", dir + "/b", dir + "/sub/c"}
		if !reflect.DeepEqual(keys, want) {
			t.Fatalf("list = %v, want %v", keys, want)
		}
		if rev < last {
			t.Fatalf("list revision %d is before the last write %d", rev, last)
		}
		kvs, rev, err = s.List(ctx, k.Pods("nowhere"))
		if err != nil || len(kvs) != 0 || rev < last {
			t.Fatalf("list of missing dir = %v, %d, %v; want empty, >= %d, nil", kvs, rev, err, last)
		}
	})
}

func TestDeleteDirRemovesEverythingBelow(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		for _, key := range []string{k.Pod("ns", "a"), k.Pod("ns", "b"), k.Pods("ns") + "/deep/c", k.Pod("other", "d")} {
			_, err := s.Put(ctx, key, []byte("x"))
			mustOK(t, "put", err)
		}
		mustOK(t, "delete dir", s.DeleteDir(ctx, k.Pods("ns")))
		mustOK(t, "delete missing dir", s.DeleteDir(ctx, k.Pods("ns")))
		kvs, _, err := s.List(ctx, k.Pods(""))
		mustOK(t, "list", err)
		if len(kvs) != 1 || kvs[0].Key != k.Pod("other", "d") {
			t.Fatalf("after delete dir: %+v, want only %s", kvs, k.Pod("other", "d"))
		}
	})
}

func TestKeysMustBeCleanPathsUnderPrefix(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		for _, key := range []string{"", "relative", k.Prefix + "/a/", k.Prefix + "//a", k.Prefix + "/a/../b", "/elsewhere/a", k.Prefix + "/_hidden"} {
			if _, err := s.Put(ctx, key, []byte("x")); err == nil || !strings.Contains(err.Error(), "invalid key") {
				t.Errorf("put %q: error %v, want invalid key", key, err)
			}
		}
	})
}

func TestTypedHelpersRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ *backend, s store.Store, k store.Keys) {
		ctx := tctx(t)
		id := store.LinkID("b", "in2", "a", "in1")
		rec := store.LinkRecord{ID: id, Namespace: "default", State: store.LinkPending, VNI: 7,
			A: store.LinkEnd{Pod: "a", IfName: "in1"}, B: store.LinkEnd{Pod: "b", IfName: "in2"}}
		kv, err := store.CreateJSON(ctx, s, k.Link("default", id), rec, 0)
		mustOK(t, "create link", err)
		rec.State = store.LinkWired
		_, err = store.UpdateJSON(ctx, s, k.Link("default", id), rec, kv.Version)
		mustOK(t, "update link", err)
		got, _, err := store.GetLink(ctx, s, k, "default", id)
		mustOK(t, "get link", err)
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("get link = %+v, want %+v", got, rec)
		}
		_, err = store.PutJSON(ctx, s, k.Announce("default", "a"), map[string]string{"ratchet": "true"})
		mustOK(t, "put announce", err)
		ann, _, err := store.GetAnnounce(ctx, s, k, "default", "a")
		if err != nil || ann["ratchet"] != "true" {
			t.Fatalf("announce = %v, %v", ann, err)
		}
		links, _, err := store.ListLinks(ctx, s, k, "")
		if err != nil || len(links) != 1 || links[0].Value.State != store.LinkWired {
			t.Fatalf("list links = %+v, %v", links, err)
		}
		_, err = s.Put(ctx, k.Pod("default", "bad"), []byte("{"))
		mustOK(t, "put corrupt pod", err)
		if _, _, err := store.ListPods(ctx, s, k, "default"); err == nil || !strings.Contains(err.Error(), k.Pod("default", "bad")) {
			t.Fatalf("list of corrupt pod: %v, want an error naming the key", err)
		}
	})
}
