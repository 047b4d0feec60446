package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/ratchet-cni/ratchet/internal/metrics/metricstest"
	"github.com/ratchet-cni/ratchet/internal/pairing"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// fakeLinks is a LinkSource the test changes between scrapes.
type fakeLinks struct {
	mu    sync.Mutex
	links []pairing.LinkSummary
}

func (f *fakeLinks) set(l []pairing.LinkSummary) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = l
}

func (f *fakeLinks) get() []pairing.LinkSummary {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pairing.LinkSummary(nil), f.links...)
}

// serve starts m's server on a free loopback port and returns its base URL.
func serve(t *testing.T, m *Metrics, health HealthFunc) string {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", m, health)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + srv.Addr().String()
}

func scrape(t *testing.T, base string) metricstest.Families {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := metricstest.Scrape(ctx, http.DefaultClient, base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// want checks one sample's value.
func want(t *testing.T, f metricstest.Families, name string, labels map[string]string, v float64) {
	t.Helper()
	got, ok := f.Value(name, labels)
	if !ok {
		t.Errorf("%s%v missing", name, labels)
		return
	}
	if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestLinkAndImpairmentGaugesAreComputedAtScrapeTime(t *testing.T) {
	src := &fakeLinks{}
	base := serve(t, New(src.get), nil)
	f := scrape(t, base)
	if _, ok := f["ratchet_links"]; ok {
		t.Errorf("ratchet_links present without links: %v", f["ratchet_links"])
	}
	want(t, f, "ratchet_impairments", l("state", "applied"), 0)
	want(t, f, "ratchet_impairments", l("state", "not_applied"), 0)

	src.set([]pairing.LinkSummary{
		{Namespace: "lab", State: store.LinkWired, Impaired: 2},
		{Namespace: "lab", State: store.LinkWired, Down: true, Impaired: 1, NotApplied: 1},
		{Namespace: "lab", State: store.LinkPending},
		{Namespace: "other", State: store.LinkFailed, Down: true, Impaired: 1, NotApplied: 1},
		{Namespace: "other", State: "weird"},
	})
	f = scrape(t, base)
	if typ := f.Type("ratchet_links"); typ != "GAUGE" {
		t.Errorf("ratchet_links is %q, want GAUGE", typ)
	}
	want(t, f, "ratchet_links", l("namespace", "lab", "state", "wired"), 2)
	want(t, f, "ratchet_links", l("namespace", "lab", "state", "pending"), 1)
	want(t, f, "ratchet_links", l("namespace", "lab", "state", "failed"), 0)
	want(t, f, "ratchet_links", l("namespace", "other", "state", "failed"), 1)
	want(t, f, "ratchet_links", l("namespace", "other", "state", "unknown"), 1)
	want(t, f, "ratchet_links", l("namespace", "other"), 2)
	want(t, f, "ratchet_links_down", l("namespace", "lab"), 1)
	want(t, f, "ratchet_links_down", l("namespace", "other"), 1)
	want(t, f, "ratchet_impairments", l("state", "applied"), 2)
	want(t, f, "ratchet_impairments", l("state", "not_applied"), 2)
	if _, ok := f.Value("ratchet_links", l("namespace", "lab", "state", "unknown")); ok {
		t.Error("an unknown state with no links is exported")
	}

	src.set(nil) // the watched copy is not live: no link families
	f = scrape(t, base)
	if _, ok := f["ratchet_links"]; ok {
		t.Error("ratchet_links kept after the source emptied")
	}
}

func TestCNIDurationsAndErrorsByCommandAndCode(t *testing.T) {
	m := New(nil)
	base := serve(t, m, nil)
	m.ObserveCNI("ADD", 3*time.Millisecond, 0)
	m.ObserveCNI("ADD", 2*time.Second, 7)
	m.ObserveCNI("DEL", 20*time.Millisecond, 0)
	m.ObserveCNI("CHECK", time.Millisecond, 11)
	m.ObserveCNI("PING", time.Millisecond, 0)    // not measured
	m.ObserveCNI("STATUS", time.Millisecond, 11) // not measured
	f := scrape(t, base)
	if typ := f.Type("ratchet_cni_duration_seconds"); typ != "HISTOGRAM" {
		t.Fatalf("ratchet_cni_duration_seconds is %q, want HISTOGRAM", typ)
	}
	want(t, f, "ratchet_cni_duration_seconds", l("command", "ADD"), 2)
	want(t, f, "ratchet_cni_duration_seconds", l("command", "DEL"), 1)
	want(t, f, "ratchet_cni_duration_seconds", l("command", "CHECK"), 1)
	want(t, f, "ratchet_cni_duration_seconds", nil, 4)
	h, _ := f.Histogram("ratchet_cni_duration_seconds", l("command", "ADD"))
	if got := h.GetSampleSum(); got < 2.003 || got > 2.0031 {
		t.Errorf("ADD duration sum %v, want 2.003", got)
	}
	bounds := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		bounds[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if bounds[0.001] != 0 || bounds[0.005] != 1 || bounds[2.5] != 2 || bounds[10] != 2 || len(bounds) != len(cniBuckets)+1 { // +Inf too
		t.Errorf("ADD buckets %v: want 1 ms … 10 s, 3 ms in ≤5 ms and 2 s in ≤2.5 s", bounds)
	}
	want(t, f, "ratchet_cni_errors_total", l("command", "ADD", "code", "7"), 1)
	want(t, f, "ratchet_cni_errors_total", l("command", "CHECK", "code", "11"), 1)
	want(t, f, "ratchet_cni_errors_total", nil, 2)
	if _, ok := f.Value("ratchet_cni_errors_total", l("command", "DEL")); ok {
		t.Error("a successful DEL counted as an error")
	}
}

func TestObserverCountsRepointsWiringErrorsAndRelists(t *testing.T) {
	m := New(nil)
	base := serve(t, m, nil)
	f := scrape(t, base)
	want(t, f, "ratchet_etcd_relists_total", nil, 0)
	var obs pairing.Observer = m
	obs.Repointed("lab")
	obs.Repointed("lab")
	obs.Repointed("other")
	obs.WiringFailed("mtu")
	obs.WiringFailed("conflict")
	obs.WiringFailed("conflict")
	obs.WiringFailed("something new") // an unknown class is "other"
	obs.Relisted()
	f = scrape(t, base)
	want(t, f, "ratchet_repoints_total", l("namespace", "lab"), 2)
	want(t, f, "ratchet_repoints_total", l("namespace", "other"), 1)
	want(t, f, "ratchet_wiring_errors_total", l("reason", "mtu"), 1)
	want(t, f, "ratchet_wiring_errors_total", l("reason", "conflict"), 2)
	want(t, f, "ratchet_wiring_errors_total", l("reason", "other"), 1)
	want(t, f, "ratchet_etcd_relists_total", nil, 1)
	if typ := f.Type("ratchet_repoints_total"); typ != "COUNTER" {
		t.Errorf("ratchet_repoints_total is %q, want COUNTER", typ)
	}
	for _, std := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := f[std]; !ok {
			t.Errorf("standard family %s missing", std)
		}
	}
}

func TestHealthzIsOKOr503WithTheReason(t *testing.T) {
	var mu sync.Mutex
	var fault error
	base := serve(t, New(nil), func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		mu.Lock()
		defer mu.Unlock()
		return fault
	})
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthy: %d %q, want 200 ok", code, body)
	}
	mu.Lock()
	fault = errors.New("prefix /x: etcd: ping: unavailable")
	mu.Unlock()
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd: ping: unavailable") {
		t.Errorf("unhealthy: %d %q, want 503 with the reason", code, body)
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", resp.StatusCode)
	}
}

func TestListenOnAnAddressInUseFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String(), New(nil), nil)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a taken port = %v, want EADDRINUSE", err)
	}
}

func TestLabelValueIsValidAndBounded(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"lab", "lab"},
		{"a\xffb", "a\uFFFDb"},
		{strings.Repeat("x", 300), strings.Repeat("x", maxLabelLen)},
		{strings.Repeat("x", maxLabelLen-1) + "é", strings.Repeat("x", maxLabelLen-1)},
	} {
		if got := labelValue(tc.in); got != tc.want {
			t.Errorf("labelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzLinkCollector feeds namespaces and states from the records (untrusted)
// into a scrape: it must never panic and always give a page the text
// parser reads, with the links all counted.
func FuzzLinkCollector(f *testing.F) {
	f.Add("lab", "wired", "other", "pending", 1, 0)
	f.Add("a\xffb", "", "\x00", "failed", -3, 7)
	f.Add(strings.Repeat("é", 200), "wired\n", "lab", "lab", 2, 2)
	f.Fuzz(func(t *testing.T, ns1, st1, ns2, st2 string, impaired, notApplied int) {
		links := []pairing.LinkSummary{
			{Namespace: ns1, State: store.LinkState(st1), Impaired: impaired, NotApplied: notApplied},
			{Namespace: ns2, State: store.LinkState(st2), Down: true, Impaired: notApplied, NotApplied: impaired},
		}
		reg := prometheus.NewRegistry() // the link collector alone: New's Go collector is slow
		reg.MustRegister(newLinkCollector(func() []pairing.LinkSummary { return links }))
		fams, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, fam := range fams {
			if err := enc.Encode(fam); err != nil {
				t.Fatalf("encode: %v", err)
			}
		}
		parsed, err := metricstest.Parse(&buf)
		if err != nil {
			t.Fatalf("%v\n%s", err, buf.String())
		}
		if n, _ := parsed.Value("ratchet_links", nil); n != 2 {
			t.Errorf("ratchet_links sums to %v, want 2", n)
		}
		a, _ := parsed.Value("ratchet_impairments", map[string]string{"state": "applied"})
		na, _ := parsed.Value("ratchet_impairments", map[string]string{"state": "not_applied"})
		if a < 0 || na < 0 || a+na != float64(max(impaired, 0)+max(notApplied, 0)) {
			t.Errorf("impairments applied %v + not applied %v, want %d ends", a, na, max(impaired, 0)+max(notApplied, 0))
		}
	})
}
