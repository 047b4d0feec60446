package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/metrics/metricstest"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// metricsURL is where a host's agent, started by hand (not on demand),
// serves metrics by default: loopback of the host's netns.
const metricsURL = "http://" + defaultMetricsAddress

// hostClient is an HTTP client whose connections are made inside h's
// netns.
func hostClient(h *testcluster.Host) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := h.NS.Do(func(ns.NetNS) error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

func healthz(t *testing.T, c *http.Client) (int, string) {
	t.Helper()
	resp, err := c.Get(metricsURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The DaemonSet's agent (started by hand, default flags) serves /metrics
// in its netns: the link-state, impairment, latency, error, wiring-error
// and re-point families hold what happened on its host; /healthz follows
// etcd; the on-demand agents of the other hosts serve no metrics.
func TestAgentMetricsAndHealthOnASimulatedHost(t *testing.T) {
	c := testcluster.New(t, "v3", 3)
	rate := &netem.Spec{Rate: "1gbit"} // tbf, or netem where the kernel has it: applied either way
	// MTU set: the link goes to ratchet.links, which carries netem (the
	// pair labels of a first link have no netem key); pair-pod only waits.
	primary, pair := seedPair(true)
	primary.Links[0].Netem, primary.Links[0].MTU = rate, 1450
	c.Announce(primary)
	c.Announce(pair)
	c.Announce(&metadata.Pod{Name: "holder"})
	for _, n := range []string{"other", "third"} {
		c.Announce(&metadata.Pod{Name: n, Primary: true, Links: []metadata.Link{{Peer: "holder", IfName: n[:1] + "1", PeerIfName: "x9"}}})
	}
	h := c.Hosts[0]
	h.StartAgent()
	hc := hostClient(h)

	a, b1 := h.NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
	a.MustAdd()
	b1.MustAdd()
	waitWired(t, a, b1, 20*time.Second)
	// A link onto an interface the holder made itself: a wiring conflict,
	// the link failed; a second link onto that end: ADD refused, code 7.
	holder, other, third := h.NewPod("holder"), h.NewPod("other"), h.NewPod("third")
	holder.MustAdd()
	holder.MustExec("ip", "link", "add", "x9", "type", "bridge")
	other.MustAdd()
	err := third.Add()
	var cerr *types.Error
	if !errors.As(err, &cerr) || cerr.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("ADD of a second link onto x9 = %v, want code 7\n%s", err, h.LogTail())
	}

	var f metricstest.Families
	val := func(name string, kv ...string) float64 {
		labels := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			labels[kv[i]] = kv[i+1]
		}
		v, _ := f.Value(name, labels)
		return v
	}
	// The gauges count what the records say of the links with an end on
	// this host: primary-pod's wired, other's failed (its peer's x9 is not
	// ratchet's), and whatever third's refused ADD left.
	var want map[store.LinkState]float64
	settled := func() bool {
		want = hostLinks(t, c, h.Name)
		for _, st := range []store.LinkState{store.LinkPending, store.LinkWired, store.LinkFailed} {
			if val("ratchet_links", "namespace", "default", "state", string(st)) != want[st] {
				return false
			}
		}
		return want[store.LinkWired] == 1 && want[store.LinkFailed] == 1 && val("ratchet_impairments", "state", "applied") == 1
	}
	if !testcluster.WaitFor(15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f, err = metricstest.Scrape(ctx, hc, metricsURL+"/metrics")
		return err == nil && settled()
	}) {
		t.Fatalf("links/impairments on %s never as recorded %v with wired 1, failed 1, applied 1 (scrape error %v):\n%v\n%v\n%s\n%s",
			h.Name, want, err, f["ratchet_links"], f["ratchet_impairments"], dumpLinks(t, c), h.LogTail())
	}
	for _, w := range []struct {
		got, want float64
		what      string
	}{
		{val("ratchet_links_down", "namespace", "default"), 0, "links down"},
		{val("ratchet_impairments", "state", "not_applied"), 0, "impairments not applied"},
		{val("ratchet_cni_duration_seconds", "command", "ADD"), 4, "ADDs measured (primary-pod, holder, other, third)"},
		{val("ratchet_cni_errors_total", "command", "ADD", "code", "7"), 1, "ADD errors with code 7"},
		{val("ratchet_cni_errors_total"), 1, "errors"},
		{val("ratchet_repoints_total"), 0, "re-points"},
	} {
		if w.got != w.want {
			t.Errorf("%s: %v, want %v\n%s", w.what, w.got, w.want, dumpLinks(t, c))
		}
	}
	if n := val("ratchet_wiring_errors_total", "reason", "conflict"); n < 1 {
		t.Errorf("wiring conflicts: %v, want ≥ 1\n%v", n, f["ratchet_wiring_errors_total"])
	}
	if code, body := healthz(t, hc); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q, want 200 ok", code, body)
	}
	// Host 1's agent was started on demand: it serves no metrics.
	if pids := c.Hosts[1].AgentPIDs(); len(pids) != 1 {
		t.Errorf("host 1 agents %v, want the on-demand one", pids)
	}
	resp, err := hostClient(c.Hosts[1]).Get(metricsURL + "/metrics")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("metrics of host 1's on-demand agent: %v, want connection refused", err)
	}

	// Host 1 is lost; its pod comes back on host 2: host 0 re-points.
	c.Hosts[1].KillAgent(syscall.SIGKILL)
	b2 := c.Hosts[2].NewPod("pair-pod")
	b2.MustAdd()
	if !testcluster.WaitFor(10*time.Second, func() bool { return a.Ping("192.0.2.101") == nil }) {
		t.Fatalf("no ping to the re-created pair-pod\n%s", h.LogTail())
	}
	if !testcluster.WaitFor(10*time.Second, func() bool {
		f, err = metricstest.Scrape(context.Background(), hc, metricsURL+"/metrics")
		return err == nil && val("ratchet_repoints_total", "namespace", "default") == 1
	}) {
		t.Errorf("re-points never 1: %v %v", err, f["ratchet_repoints_total"])
	}

	// etcd down: 503 naming it; back: 200.
	c.Etcd.Stop()
	if code, body := healthz(t, hc); code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd") {
		t.Errorf("healthz with etcd down: %d %q, want 503 naming etcd", code, body)
	}
	c.Etcd.Restart()
	if !testcluster.WaitFor(15*time.Second, func() bool { code, _ := healthz(t, hc); return code == http.StatusOK }) {
		code, body := healthz(t, hc)
		t.Errorf("healthz after etcd restarted: %d %q, want 200", code, body)
	}

	for _, p := range []*testcluster.Pod{b1, third, other, a, b2} { // b1: the lost host's DEL, when it comes back
		p.MustDel()
	}
	holder.MustExec("ip", "link", "del", "x9")
	holder.MustDel()
	if !testcluster.WaitFor(15*time.Second, func() bool { return len(c.Records()) == 0 }) {
		t.Errorf("records left: %v", c.Records())
	}
	c.AssertNoLeftovers(a, b1, b2, holder, other, third)
}

// hostLinks counts by state the link records with an end on host.
func hostLinks(t *testing.T, c *testcluster.Cluster, host string) map[store.LinkState]float64 {
	t.Helper()
	kvs, _, err := c.KV.List(context.Background(), c.Keys.Links("default"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.LinkState]float64{}
	for _, kv := range kvs {
		var rec store.LinkRecord
		if err := store.Decode(kv, &rec); err != nil {
			t.Fatal(err)
		}
		for _, end := range []store.LinkEnd{rec.A, rec.B} {
			pod, _, err := store.GetJSON[store.PodRecord](context.Background(), c.KV, c.Keys.Pod("default", end.Pod))
			if err == nil && pod.Host == host {
				out[rec.State]++
				break
			}
		}
	}
	return out
}

// dumpLinks lists the link records, for failure messages.
func dumpLinks(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	kvs, _, err := c.KV.List(context.Background(), c.Keys.Links("default"))
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.Key + " " + string(kv.Value) + "\n")
	}
	return b.String()
}
