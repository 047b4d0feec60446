package store_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// refusedURL is a loopback URL nothing listens on.
func refusedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, "listen", err)
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// silentURL is a loopback URL that accepts connections and never answers.
func silentURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, "listen", err)
	t.Cleanup(func() { l.Close() })
	return "http://" + l.Addr().String()
}

func TestUnreachableEtcdIsErrUnavailable(t *testing.T) {
	const timeout = 500 * time.Millisecond
	endpoints := map[string]string{"refused": refusedURL(t), "silent": silentURL(t)}
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		t.Parallel()
		for name, url := range endpoints {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := newStore(t, store.Config{Endpoints: []string{url}, API: api, Prefix: "/ratchet", Timeout: timeout})
				k := store.Keys{Prefix: "/ratchet"}
				ops := map[string]func(context.Context) error{
					"ping":   s.Ping,
					"get":    func(ctx context.Context) error { _, err := s.Get(ctx, k.Pod("a", "b")); return err },
					"create": func(ctx context.Context) error { _, err := s.Create(ctx, k.VNI(1), nil, 0); return err },
					"list":   func(ctx context.Context) error { _, _, err := s.List(ctx, k.Pods("")); return err },
				}
				for op, call := range ops {
					start := time.Now()
					err := call(context.Background())
					took := time.Since(start)
					t.Logf("%s: %v after %v", op, err, took.Round(time.Millisecond))
					if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), url) {
						t.Errorf("%s: error %v, want ErrUnavailable naming %s", op, err, url)
					}
					if took > 3*timeout {
						t.Errorf("%s: took %v with timeout %v", op, took, timeout)
					}
				}
			})
		}
	})
}

func TestV2AgainstEtcdWithoutV2NamesV3(t *testing.T) {
	e := testenv.StartEtcdV3Only(t)
	s := newStore(t, store.Config{Endpoints: []string{e.URL}, API: store.APIv2, Prefix: "/ratchet"})
	ctx := tctx(t)
	want := `does not serve the v2 API; set etcd.api to "v3"`
	err := s.Ping(ctx)
	if !errors.Is(err, store.ErrAPINotServed) || !strings.Contains(err.Error(), want) {
		t.Fatalf("ping: %v; want ErrAPINotServed saying %s", err, want)
	}
	_, err = s.Create(ctx, "/ratchet/x", []byte("1"), 0)
	if !errors.Is(err, store.ErrAPINotServed) || !strings.Contains(err.Error(), want) {
		t.Fatalf("create: %v; want ErrAPINotServed saying %s", err, want)
	}
	t.Log(err)
	v3 := newStore(t, store.Config{Endpoints: []string{e.URL}, API: store.APIv3, Prefix: "/ratchet"})
	mustOK(t, "v3 ping of the same etcd", v3.Ping(ctx))
}

func TestV3AgainstEtcd2NamesV2(t *testing.T) {
	// An etcd 2 answers /version but not gRPC.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/version" {
			_, _ = w.Write([]byte(`{"etcdserver":"2.3.8","etcdcluster":"2.3.0"}`))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	s := newStore(t, store.Config{Endpoints: []string{srv.URL}, API: store.APIv3, Prefix: "/ratchet", Timeout: 500 * time.Millisecond})
	want := `does not serve the v3 API; set etcd.api to "v2" (it is etcd 2.3.8)`
	for _, op := range []string{"ping", "get"} {
		var err error
		if op == "ping" {
			err = s.Ping(context.Background())
		} else {
			_, err = s.Get(context.Background(), "/ratchet/x")
		}
		if !errors.Is(err, store.ErrAPINotServed) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v; want ErrAPINotServed saying %s", op, err, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]store.Config{
		"no endpoints":  {API: store.APIv3},
		"unknown api":   {Endpoints: []string{"http://127.0.0.1:2379"}, API: "v4"},
		"missing CA":    {Endpoints: []string{"https://127.0.0.1:2379"}, API: store.APIv3, CA: "/nonexistent/ca.pem"},
		"cert, no key":  {Endpoints: []string{"https://127.0.0.1:2379"}, API: store.APIv2, Cert: "/nonexistent/c.pem"},
		"v2 missing CA": {Endpoints: []string{"https://127.0.0.1:2379"}, API: store.APIv2, CA: "/nonexistent/ca.pem"},
	} {
		if s, err := store.New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}
