package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestTLSClientCertAndV3Auth(t *testing.T) {
	e := testenv.StartEtcdTLS(t)
	prefix := "/" + testenv.UniqueName("rt")
	e.AddUser(t, "ratchet", "s3cret", prefix)
	k := store.Keys{Prefix: prefix}
	cfg := store.Config{Endpoints: []string{e.URL}, API: store.APIv3, Prefix: prefix,
		CA: e.CA, Cert: e.Cert, Key: e.Key, Username: "ratchet", Password: "s3cret"}
	s := newStore(t, cfg)
	ctx := tctx(t)
	mustOK(t, "ping", s.Ping(ctx))
	ch := s.Watch(ctx, k.Pods(""), 0)
	kv, err := s.Create(ctx, k.Pod("default", "a"), []byte("1"), 0)
	mustOK(t, "create", err)
	_, err = s.Create(ctx, k.Agent("a"), []byte("lock"), 5*time.Second)
	mustOK(t, "create with lease", err)
	_, err = s.Update(ctx, kv.Key, []byte("2"), kv.Version)
	mustOK(t, "update", err)
	wantEvent(t, ch, store.Put, kv.Key)
	wantEvent(t, ch, store.Put, kv.Key)

	bad := cfg
	bad.Password = "wrong"
	_, err = store.New(bad)
	if !errors.Is(err, store.ErrAuth) || !strings.Contains(err.Error(), "authentication failed") ||
		!strings.Contains(err.Error(), `"ratchet"`) {
		t.Fatalf("wrong password: %v; want ErrAuth saying authentication failed for \"ratchet\"", err)
	}
	t.Log(err)

	other := cfg
	other.Prefix = "/elsewhere"
	s2 := newStore(t, other)
	_, err = s2.Put(ctx, "/elsewhere/x", []byte("1"))
	if !errors.Is(err, store.ErrAuth) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("write outside the granted prefix: %v; want ErrAuth, permission denied", err)
	}

	v2 := cfg
	v2.API, v2.Username, v2.Password = store.APIv2, "", ""
	s4 := newStore(t, v2)
	_, err = s4.Create(ctx, k.Pod("v2", "a"), []byte("1"), 0)
	mustOK(t, "v2 create over TLS", err)

	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		noCert := cfg
		noCert.API, noCert.Cert, noCert.Key, noCert.Timeout = api, "", "", 500*time.Millisecond
		s3, err := store.New(noCert)
		if err == nil {
			t.Cleanup(func() { s3.Close() })
			err = s3.Ping(ctx)
		}
		if err == nil || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "TLS failure") {
			t.Fatalf("%s without a client certificate: %v; want a TLS failure, not ErrUnavailable", api, err)
		}
		t.Log(err)
	})
}
