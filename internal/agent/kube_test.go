package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/metadata"
)

func kubeConf(t *testing.T, metadataList, kubeconfig string) *config.NetConf {
	t.Helper()
	c, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"n","delegates":[{"type":"bridge"}],
		"metadata":` + metadataList + `,"kubernetes":{"kubeconfig":"` + kubeconfig + `"},"host":{"name":"node-a"}}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKubeWatchesWithoutCredentials(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	var logs syncBuffer
	k := newKubeWatches(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer k.close()
	if w := k.get(kubeConf(t, `["docker","etcd"]`, "")); w != nil {
		t.Fatalf("a netconf without the kubernetes source got a watch: %v", w)
	}
	for range 2 {
		if w := k.get(kubeConf(t, `["kubernetes","etcd"]`, "")); w != nil {
			t.Fatalf("a watch without credentials: %v", w)
		}
	}
	if n := strings.Count(logs.String(), "no Kubernetes API"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestKubeWatchesSharedPerKubeconfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing answers there: the API is unreachable
	kc := t.TempDir() + "/kubeconfig"
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://`+addr+`"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := newKubeWatches(ctx, slog.New(slog.DiscardHandler))
	defer k.close()
	w1 := k.get(kubeConf(t, `["kubernetes"]`, kc))
	w2 := k.get(kubeConf(t, `["docker","kubernetes","etcd"]`, kc))
	if w1 == nil || w1 != w2 {
		t.Fatalf("watches %v, %v: want one, shared", w1, w2)
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	_, err = w1.Labels(lctx, "lab", "a")
	if !errors.Is(err, metadata.ErrSourceUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Labels with the API down: %v, want ErrSourceUnavailable naming %s", err, addr)
	}
	if _, ok := w1.Cached("lab", "a"); ok {
		t.Fatal("Cached answered with the API down")
	}
	done := make(chan struct{})
	go func() { k.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return")
	}
}
