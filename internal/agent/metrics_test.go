package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/metrics/metricstest"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// testAgent is an agent run in the test process against an embedded etcd.
type testAgent struct {
	etcd    *testenv.Etcd
	kv      store.Store
	keys    store.Keys
	host    string
	socket  string
	netconf []byte
	// base is http://<metrics address>; "" when metrics did not start.
	base string
	log  *syncBuffer
}

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEtcd starts an embedded etcd and a v3 store on a fresh prefix.
func newEtcd(t *testing.T) (*testenv.Etcd, store.Store, store.Keys) {
	t.Helper()
	e := testenv.StartEtcd(t)
	keys := store.Keys{Prefix: "/" + testenv.UniqueName("rtm")}
	kv, err := store.New(store.Config{Endpoints: []string{e.URL}, API: "v3", Prefix: keys.Prefix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	return e, kv, keys
}

// startAgent runs an agent with a netconf on e (etcd timeout 1s) and
// metrics on metricsAddr, and stops it when the test ends.
func startAgent(t *testing.T, e *testenv.Etcd, keys store.Keys, metricsAddr string) *testAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "rtm-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ta := &testAgent{etcd: e, keys: keys, host: testenv.UniqueName("node-"), socket: filepath.Join(dir, "ratchetd.sock"), log: &syncBuffer{}}
	ta.netconf, err = json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "metrics-test", "type": "ratchet",
		"delegates": []any{map[string]any{"type": "bridge"}},
		"etcd":      map[string]any{"endpoints": []string{e.URL}, "api": "v3", "prefix": keys.Prefix, "timeout": "1s"},
		"metadata":  []string{"etcd"},
		"host":      map[string]any{"name": ta.host, "address": "198.51.100.1"},
		"cniDir":    filepath.Join(dir, "cni"),
		"agent":     map[string]any{"socket": ta.socket},
	})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "netconf")
	if err := os.WriteFile(conf, ta.netconf, 0o600); err != nil {
		t.Fatal(err)
	}
	bound := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := Options{Socket: ta.socket, Netconf: conf, Host: ta.host, Version: "test",
		Log:            slog.New(slog.NewTextHandler(ta.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MetricsAddress: metricsAddr, MetricsBound: func(a net.Addr) { bound <- a }}
	go func() { done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("agent did not stop within 20s\n%s", ta.log)
		}
	})
	client := agentapi.NewClient(ta.socket, time.Second)
	if !waitFor(10*time.Second, func() bool { return client.Call(ctx, agentapi.PathPing, struct{}{}, nil) == nil }) {
		t.Fatalf("agent does not answer\n%s", ta.log)
	}
	select {
	case a := <-bound:
		ta.base = "http://" + a.String()
	case <-time.After(time.Second): // none (disabled, or the address was taken)
	}
	return ta
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends one request of the plugin and returns its CNI code (0: done).
func (ta *testAgent) call(t *testing.T, path string, req agentapi.Request) uint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := agentapi.NewClient(ta.socket, 20*time.Second).Call(ctx, path, req, nil)
	if err == nil {
		return 0
	}
	var aerr *agentapi.Error
	if !errors.As(err, &aerr) {
		t.Fatalf("%s: %v", path, err)
	}
	return aerr.Code
}

func (ta *testAgent) scrape(t *testing.T) metricstest.Families {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := metricstest.Scrape(ctx, http.DefaultClient, ta.base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (ta *testAgent) healthz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(ta.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// seedLinks records pods and links in etcd: on the agent's host a, b
// (namespace lab) and e (lab2); c and d elsewhere.
func seedLinks(t *testing.T, kv store.Store, keys store.Keys, host string) {
	t.Helper()
	ctx := context.Background()
	pods := map[string]string{"lab/a": host, "lab/b": host, "lab/c": "elsewhere", "lab/d": "elsewhere", "lab2/e": host, "lab2/c": "elsewhere"}
	for nsName, h := range pods {
		ns, name, _ := strings.Cut(nsName, "/")
		rec := store.PodRecord{Namespace: ns, Name: name, ContainerID: testenv.UniqueName("ctr"), Netns: "/proc/1/ns/net",
			IfName: "eth0", Host: h, HostAddress: "198.51.100.9", Pod: metadata.Pod{Name: name, Namespace: ns}, Created: time.Now().UTC()}
		if _, err := store.CreateJSON(ctx, kv, keys.Pod(ns, name), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	link := func(ns, a, b string, st store.LinkState, mutate func(*store.LinkRecord)) {
		rec := store.LinkRecord{ID: store.LinkID(a, "x", b, "x"), Namespace: ns, State: st, Updated: time.Now().UTC(),
			A: store.LinkEnd{Pod: a, IfName: "x"}, B: store.LinkEnd{Pod: b, IfName: "x"}, Declarer: a}
		if mutate != nil {
			mutate(&rec)
		}
		if _, err := store.CreateJSON(ctx, kv, keys.Link(ns, rec.ID), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	link("lab", "a", "b", store.LinkWired, func(r *store.LinkRecord) {
		r.Admin = store.AdminDown
		r.A.Netem, r.A.Applied = &netem.Spec{Rate: "10mbit"}, "tbf"
		r.B.Netem, r.B.Applied = &netem.Spec{Delay: "5ms"}, "not applied: delay: kernel has no sch_netem"
	})
	link("lab", "a", "c", store.LinkPending, nil)
	link("lab", "c", "d", store.LinkWired, nil) // no end here: not counted
	link("lab2", "e", "c", store.LinkFailed, nil)
}

// The agent's /metrics, read with the Prometheus text parser, counts the
// links its watched copy holds for this host and the plugin's requests.
func TestAgentMetricsCountLinksAndRequests(t *testing.T) {
	e, kv, keys := newEtcd(t)
	ta := startAgent(t, e, keys, "127.0.0.1:0")
	if ta.base == "" {
		t.Fatalf("metrics did not start\n%s", ta.log)
	}
	seedLinks(t, kv, keys, ta.host)
	var f metricstest.Families
	if !waitFor(10*time.Second, func() bool {
		f = ta.scrape(t)
		v, _ := f.Value("ratchet_links", nil)
		return v == 3
	}) {
		t.Fatalf("links on this host never 3: %v\n%s", f["ratchet_links"], ta.log)
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got, ok := f.Value(name, labels); !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	check("ratchet_links", l("namespace", "lab", "state", "wired"), 1)
	check("ratchet_links", l("namespace", "lab", "state", "pending"), 1)
	check("ratchet_links", l("namespace", "lab", "state", "failed"), 0)
	check("ratchet_links", l("namespace", "lab2", "state", "failed"), 1)
	check("ratchet_links_down", l("namespace", "lab"), 1)
	check("ratchet_links_down", l("namespace", "lab2"), 0)
	check("ratchet_impairments", l("state", "applied"), 1)
	check("ratchet_impairments", l("state", "not_applied"), 1)
	check("ratchet_etcd_relists_total", nil, 0)

	// The plugin's requests: a pod without ratchet metadata (ADD, CHECK,
	// DEL done), and an ADD whose netconf is invalid (code 7).
	req := agentapi.Request{ContainerID: "c1", NetNS: "/proc/1/ns/net", IfName: "eth0", Netconf: ta.netconf,
		Args: "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=unannounced"}
	for _, p := range []string{agentapi.PathAdd, agentapi.PathCheck, agentapi.PathDel} {
		if code := ta.call(t, p, req); code != 0 {
			t.Fatalf("%s of a pod without metadata: code %d\n%s", p, code, ta.log)
		}
	}
	bad := req
	bad.Netconf = bytes.Replace(ta.netconf, []byte(`"api":"v3"`), []byte(`"api":"v4"`), 1)
	if code := ta.call(t, agentapi.PathAdd, bad); code != codeInvalidConfig {
		t.Fatalf("ADD with etcd.api v4: code %d, want 7", code)
	}
	f = ta.scrape(t)
	check("ratchet_cni_duration_seconds", l("command", "ADD"), 2)
	check("ratchet_cni_duration_seconds", l("command", "CHECK"), 1)
	check("ratchet_cni_duration_seconds", l("command", "DEL"), 1)
	check("ratchet_cni_errors_total", l("command", "ADD", "code", "7"), 1)
	check("ratchet_cni_errors_total", nil, 1)
	if h, ok := f.Histogram("ratchet_cni_duration_seconds", l("command", "ADD")); !ok || h.GetSampleSum() <= 0 || h.GetSampleSum() > 20 {
		t.Errorf("ADD latency sum %v, want > 0 and < 20s", h.GetSampleSum())
	}

	// A link record deleted: the gauges follow the watched copy.
	if err := kv.Delete(context.Background(), keys.Link("lab", store.LinkID("a", "x", "c", "x")), 0); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		f = ta.scrape(t)
		v, _ := f.Value("ratchet_links", l("namespace", "lab", "state", "pending"))
		return v == 0
	}) {
		t.Errorf("deleted pending link still counted: %v", f["ratchet_links"])
	}
}

// /healthz is 200 while the socket serves and etcd answers, 503 naming
// etcd while it is down, 200 again once it is back, and 503 naming the
// socket once that is gone.
func TestAgentHealthzFollowsEtcdAndTheSocket(t *testing.T) {
	e, kv, keys := newEtcd(t)
	p := &metadata.Pod{Name: "p", Namespace: "lab"}
	if _, err := store.PutJSON(context.Background(), kv, keys.Announce(p.Namespace, p.Name), metadata.Labels(p)); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, e, keys, "127.0.0.1:0")
	if ta.base == "" {
		t.Fatalf("metrics did not start\n%s", ta.log)
	}
	if code, body := ta.healthz(t); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz with etcd up: %d %q, want 200 ok", code, body)
	}
	e.Stop()
	start := time.Now()
	code, body := ta.healthz(t)
	took := time.Since(start)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd") || !strings.Contains(body, keys.Prefix) {
		t.Errorf("healthz with etcd down: %d %q, want 503 naming etcd and the prefix", code, body)
	}
	t.Logf("healthz with etcd down answered in %v: %q", took.Round(time.Millisecond), body)
	// An ADD of an announced pod while etcd is down cannot record it: try
	// again later.
	req := agentapi.Request{ContainerID: "c2", NetNS: "/proc/1/ns/net", IfName: "eth0", Netconf: ta.netconf,
		Args: "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=p"}
	if code := ta.call(t, agentapi.PathAdd, req); code != codeTryAgainLater {
		t.Errorf("ADD with etcd down: code %d, want 11", code)
	}
	if v, _ := ta.scrape(t).Value("ratchet_cni_errors_total", map[string]string{"command": "ADD", "code": "11"}); v != 1 {
		t.Errorf("ADD errors with code 11: %v, want 1", v)
	}
	e.Restart()
	if !waitFor(15*time.Second, func() bool { c, _ := ta.healthz(t); return c == http.StatusOK }) {
		code, body = ta.healthz(t)
		t.Errorf("healthz after etcd restarted: %d %q, want 200", code, body)
	}
	if err := os.Remove(ta.socket); err != nil {
		t.Fatal(err)
	}
	if code, body := ta.healthz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, ta.socket) {
		t.Errorf("healthz without the socket: %d %q, want 503 naming it", code, body)
	}
}

// Agents that share a netns must not fight over the metrics port: the
// second logs a warning and serves its socket without metrics.
func TestAgentWhoseMetricsAddressIsTakenRunsWithoutMetrics(t *testing.T) {
	e, _, keys := newEtcd(t)
	first := startAgent(t, e, keys, "127.0.0.1:0")
	if first.base == "" {
		t.Fatalf("first agent's metrics did not start\n%s", first.log)
	}
	addr := strings.TrimPrefix(first.base, "http://")
	second := startAgent(t, e, keys, addr) // answers PING: it runs
	if second.base != "" {
		t.Errorf("second agent bound %s too", second.base)
	}
	if !strings.Contains(second.log.String(), "no metrics: cannot listen") || !strings.Contains(second.log.String(), "address already in use") {
		t.Errorf("second agent did not warn about the taken address:\n%s", second.log)
	}
	if code, _ := first.healthz(t); code != http.StatusOK {
		t.Errorf("first agent's healthz: %d", code)
	}
	off := startAgent(t, e, keys, "")
	if off.base != "" || strings.Contains(off.log.String(), "metrics") {
		t.Errorf("agent without a metrics address serves metrics (%s) or logs about them:\n%s", off.base, off.log)
	}
}

func TestMalformedMetricsAddressFailsTheStart(t *testing.T) {
	for _, addr := range []string{"9465", "localhost:http-alt", "127.0.0.1:70000", "[::1"} {
		err := Run(context.Background(), Options{Socket: filepath.Join(t.TempDir(), "s.sock"), MetricsAddress: addr})
		if err == nil || !strings.Contains(err.Error(), "metrics address") {
			t.Errorf("Run with metrics address %q = %v, want an error naming it", addr, err)
		}
	}
}
