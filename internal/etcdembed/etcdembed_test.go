package etcdembed

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// freeURL returns an http:// loopback URL whose port was free a moment ago.
func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// startEtcd starts a server on fresh ports (retrying when one was taken
// meanwhile) and stops it when the test ends. It returns the server, a
// stop func (embed.Etcd.Close panics when called twice) and the client URL.
func startEtcd(t *testing.T) (*embed.Etcd, func(), string) {
	t.Helper()
	var err error
	for range 5 {
		client := freeURL(t)
		var srv *embed.Etcd
		if srv, err = Start("unit", t.TempDir(), client, freeURL(t)); err == nil {
			stop := sync.OnceFunc(srv.Close)
			t.Cleanup(stop)
			return srv, stop, client
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("Start: %v", err)
	return nil, nil, ""
}

func TestStartServesV3AndCloseStopsIt(t *testing.T) {
	srv, stop, client := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/ratchet/k", "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := cli.Get(ctx, "/ratchet/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get = %v, %v; want v", resp, err)
	}

	stop()
	select {
	case <-srv.Server.StopNotify():
	case <-time.After(10 * time.Second):
		t.Fatal("server not stopped after Close")
	}
	host := strings.TrimPrefix(client, "http://")
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", host)
	}
}

func TestStartServesV2(t *testing.T) {
	_, _, client := startEtcd(t)
	hc := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequest(http.MethodPut, client+"/v2/keys/ratchet/k", strings.NewReader(url.Values{"value": {"v2"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("v2 PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("v2 PUT status %s, want 201", resp.Status)
	}
	resp, err = hc.Get(client + "/v2/keys/ratchet/k")
	if err != nil {
		t.Fatalf("v2 GET: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"value":"v2"`) {
		t.Errorf("v2 GET = %s %s, want the value", resp.Status, body)
	}
}

func TestStartRejectsBadURLsAndTakenPorts(t *testing.T) {
	if _, err := Start("bad", t.TempDir(), "http://[::1", freeURL(t)); err == nil || !strings.Contains(err.Error(), "client URL") {
		t.Errorf("bad client URL: err = %v", err)
	}
	if _, err := Start("bad", t.TempDir(), freeURL(t), "http://[::1"); err == nil || !strings.Contains(err.Error(), "peer URL") {
		t.Errorf("bad peer URL: err = %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv, err := Start("taken", t.TempDir(), "http://"+l.Addr().String(), freeURL(t))
	if err == nil {
		srv.Close()
		t.Fatal("Start on a taken client port succeeded")
	}
}
