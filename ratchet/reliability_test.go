package main

// Reliability suite (issue 6), part 1: faults of etcd, delegates, netns,
// the plugin process and its caches. Every case ends with
// AssertNoLeftovers. Durations are logged, never asserted; the limits below
// only turn a hang into a failure.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// manyLinks is the size of the hub pod whose ADD and DEL take long enough
// to be interrupted.
const manyLinks = 40

// hangLimit turns a CNI command that does not return into a failure: every
// pairing step is bounded by 10×etcd.timeout+30s (50s here), plus the
// rollback's own etcd requests.
const hangLimit = 90 * time.Second

// hubAndSpoke: the hub declares n links to the spoke (hub hI ↔ spoke sI);
// the spoke declares nothing and learns them from the hub's announcement.
func hubAndSpoke(n int) (hub, spoke *metadata.Pod) {
	hub = &metadata.Pod{Name: "hub", Primary: true}
	for i := range n {
		hub.Links = append(hub.Links, metadata.Link{
			Peer: "spoke", IfName: fmt.Sprintf("h%d", i), IP: fmt.Sprintf("198.18.%d.1/30", i),
			PeerIfName: fmt.Sprintf("s%d", i), PeerIP: fmt.Sprintf("198.18.%d.2/30", i),
		})
	}
	return hub, &metadata.Pod{Name: "spoke"}
}

// newCluster is testcluster.New (whose hosts' agents are killed when the
// test ends, also when it fails).
func newCluster(t *testing.T, api string, nHosts int) *testcluster.Cluster {
	return testcluster.New(t, api, nHosts)
}

// crashableCluster is a cluster on a one-member etcd whose Stop cuts every
// client connection at once, as a crash does (the Cluster's own etcd
// closes gracefully, keeping watches and long polls open for seconds).
func crashableCluster(t *testing.T, api string, nHosts int) (*testcluster.MultiEtcd, *testenv.EtcdCluster) {
	ec := testenv.StartEtcdCluster(t, 1)
	return testcluster.NewWithEtcd(t, api, nHosts, ec.URLs), ec
}

// hubCluster is a one-host crashable cluster with the hub and spoke
// announced, and their pods (not added).
func hubCluster(t *testing.T, api string) (*testcluster.MultiEtcd, *testenv.EtcdCluster, *testcluster.Pod, *testcluster.Pod) {
	c, ec := crashableCluster(t, api, 1)
	mh, ms := hubAndSpoke(manyLinks)
	c.Announce(mh)
	c.Announce(ms)
	return c, ec, c.NewPod(c.Hosts[0], "hub"), c.NewPod(c.Hosts[0], "spoke")
}

// bounded runs fn, failing the test when it has not returned within limit.
func bounded(t *testing.T, what string, limit time.Duration, fn func() error) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		t.Fatalf("%s did not return within %v", what, limit)
		return 0, nil
	}
}

// between is a random duration in [lo, hi).
func between(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo)
}

// linkRecords lists the link records of the default namespace.
func linkRecords(t *testing.T, c *testcluster.Cluster) []store.LinkRecord {
	t.Helper()
	entries, _, err := store.ListLinks(context.Background(), c.KV, c.Keys, "default")
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]store.LinkRecord, len(entries))
	for i, e := range entries {
		recs[i] = e.Value
	}
	return recs
}

// countLinks counts the link records for which match holds.
func countLinks(t *testing.T, c *testcluster.Cluster, match func(*store.LinkRecord) bool) int {
	t.Helper()
	n := 0
	for _, r := range linkRecords(t, c) {
		if match(&r) {
			n++
		}
	}
	return n
}

func isWired(r *store.LinkRecord) bool { return r.State == store.LinkWired }

// namesContainer reports whether a link record still refers to a container.
func namesContainer(id string) func(*store.LinkRecord) bool {
	return func(r *store.LinkRecord) bool {
		return r.Builder == id || r.A.ContainerID == id || r.B.ContainerID == id
	}
}

// firstLine is the first line of an error, "ok" for none.
func firstLine(err error) string {
	if err == nil {
		return "ok"
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// leases counts host-local's leases on the pod's host.
func leases(t *testing.T, h *testcluster.Host) int {
	return len(testenv.Leases(t, filepath.Join(h.Dir, "ipam")))
}

func TestEtcdKilledDuringAddFailsWithCode11OrSucceedsAndDelLeavesNothing(t *testing.T) {
	for _, api := range testenv.APIs() {
		t.Run(api, func(t *testing.T) {
			c, ec, hub, spoke := hubCluster(t, api)
			spoke.MustAdd()
			// Kill etcd shortly after the hub is recorded, so that it goes
			// while the links are declared and wired, whatever ADD's speed.
			delay := between(0, 30*time.Millisecond)
			stopped := make(chan time.Duration, 1)
			start := time.Now()
			go func() {
				testcluster.WaitFor(10*time.Second, func() bool {
					_, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", "hub")
					return err == nil
				})
				time.Sleep(delay)
				ec.Stop(0)
				stopped <- time.Since(start)
			}()
			took, err := bounded(t, "ADD with etcd killed", hangLimit, hub.Add)
			t.Logf("etcd stopped %v after ADD started (%v after the hub was recorded); ADD returned after %v: %s",
				<-stopped, delay, took, firstLine(err))
			if err != nil {
				if code := cniCode(t, err); code != types.ErrTryAgainLater {
					t.Errorf("ADD failed with code %d, want 11: %v", code, err)
				}
				t.Logf("links in the hub's netns after the failed ADD: %v", hub.Links())
			}
			ec.Restart(0)
			hub.MustDel()
			spoke.MustDel()
			c.AssertNoLeftovers(hub, spoke)
		})
	}
}

func TestEtcdKilledDuringDelStillReleasesDelegatesAndGCClearsRecords(t *testing.T) {
	for _, api := range testenv.APIs() {
		t.Run(api, func(t *testing.T) {
			c, ec, hub, spoke := hubCluster(t, api)
			h := c.Hosts[0]
			spoke.MustAdd()
			hub.MustAdd()
			delay := between(10*time.Millisecond, 60*time.Millisecond)
			stopped := make(chan struct{})
			go func() { time.Sleep(delay); ec.Stop(0); close(stopped) }()
			took, err := bounded(t, "DEL with etcd killed", hangLimit, hub.Del)
			<-stopped
			t.Logf("etcd stopped %v after DEL started; DEL returned after %v: %s", delay, took, firstLine(err))
			if err != nil {
				t.Errorf("DEL with etcd killed: %v\n%s", err, h.LogTail())
			}
			if n := leases(t, h); n != 1 {
				t.Errorf("%d leases on the host, want only the spoke's", n)
			}
			ec.Restart(0)
			if err := h.GC(spoke); err != nil {
				t.Fatalf("GC: %v\n%s", err, h.LogTail())
			}
			if _, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", "hub"); err == nil {
				t.Errorf("GC left the hub's pod record")
			}
			if n := countLinks(t, c.Cluster, namesContainer(hub.RT.ContainerID)); n > 0 {
				t.Errorf("GC left %d link records naming the hub's container, e.g. %+v", n, linkRecords(t, c.Cluster)[0])
			}
			spoke.MustDel()
			c.AssertNoLeftovers(hub, spoke)
		})
	}
}

func TestMasterDelegateMissingOrFailingFailsAddNamingItAndLeavesNothing(t *testing.T) {
	cases := []struct {
		name, wantDelegate string
		mutate             func(master map[string]any)
	}{
		{"binary missing", "delegate 0 (no-such-master on eth0)", func(m map[string]any) { m["type"] = "no-such-master" }},
		{"bad ipam subnet", "delegate 0 (bridge on eth0)", func(m map[string]any) {
			m["ipam"].(map[string]any)["subnet"] = "10.99.0.0/33"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "v3", 1)
			mp, _ := testcluster.SeedPair(t)
			c.Announce(mp)
			p := c.Hosts[0].NewKillablePod("primary-pod")
			p.Reconfigure(func(conf map[string]any) { tc.mutate(conf["delegates"].([]any)[0].(map[string]any)) })
			_, err := bounded(t, "ADD", hangLimit, p.Add)
			if err == nil {
				t.Fatal("ADD with a broken master delegate succeeded")
			}
			// A delegate's failure keeps the delegate's code (host-local's
			// bad subnet is its 999, passed on by bridge); a binary that is
			// not there is ratchet's own "anything else" (999).
			code := cniCode(t, err)
			t.Logf("code %d: %v", code, err)
			if !strings.Contains(err.Error(), tc.wantDelegate) {
				t.Errorf("error does not name %q: %v", tc.wantDelegate, err)
			}
			if code != types.ErrInternal {
				t.Errorf("code %d, want 999", code)
			}
			c.AssertNothingLeft()
			// The bridge plugin makes the veth before asking IPAM and does
			// not remove it when IPAM fails (nor can its DEL, which asks
			// IPAM first): that veth lives as long as the sandbox.
			t.Logf("links in the pod's netns after the failed ADD: %v", p.Links())
			p.KillSandbox()
			c.AssertNoLeftovers(p)
		})
	}
}

func TestPeerNetnsGoneBeforeWiringRecordsLinkFailedAndAddSucceeds(t *testing.T) {
	c := newCluster(t, "v3", 1)
	h := c.Hosts[0]
	mp, mq := testcluster.SeedPair(t)
	c.Announce(mp)
	c.Announce(mq)
	a, b := h.NewKillablePod("primary-pod"), h.NewPod("pair-pod")
	a.MustAdd()
	a.KillSandbox()
	if err := b.Add(); err != nil {
		t.Errorf("ADD of the peer of a pod whose netns is gone: %v (want success, link recorded failed)\n%s", err, h.LogTail())
	} else {
		// Either the peer's ADD found the netns gone (failed, naming the
		// pod), or the agent had already collected the dead sandbox (its
		// record gone, the link pending until the pod returns).
		rec := c.Link("primary-pod", "in1", "pair-pod", "in2")
		_, _, gone := store.GetPod(context.Background(), c.KV, c.Keys, "default", "primary-pod")
		failed := rec.State == store.LinkFailed && strings.Contains(rec.Reason, "primary-pod")
		collected := rec.State == store.LinkPending && errors.Is(gone, store.ErrNotFound)
		if !failed && !collected {
			t.Errorf("link record state %q reason %q (dead pod's record: %v), want failed naming primary-pod or the dead pod collected", rec.State, rec.Reason, gone)
		}
		t.Logf("link recorded %s: %s", rec.State, rec.Reason)
	}
	a.MustDel()
	b.MustDel()
	c.AssertNoLeftovers(a, b)
}

func TestCorruptCacheDelStillReleasesEverything(t *testing.T) {
	cases := []struct{ name, file string }{
		{"delegation cache", "%s-eth0.json"},
		{"pairing state", "pairing/%s.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "v3", 1)
			h := c.Hosts[0]
			mp, mq := testcluster.SeedPair(t)
			c.Announce(mp)
			c.Announce(mq)
			a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
			a.MustAdd()
			b.MustAdd()
			path := filepath.Join(h.Dir, "cni", fmt.Sprintf(tc.file, a.RT.ContainerID))
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("no %s to corrupt: %v (files: %v)", tc.name, err, a.CacheFiles())
			}
			if err := os.WriteFile(path, []byte(`{"containerID": 42, garbage`), 0o600); err != nil {
				t.Fatal(err)
			}
			a.MustDel()
			if n := leases(t, h); n != 1 {
				t.Errorf("%d leases after DEL with a corrupt %s, want only the peer's", n, tc.name)
			}
			if _, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", "primary-pod"); err == nil {
				t.Errorf("DEL with a corrupt %s left the pod's record", tc.name)
			}
			if a.HasLink("in1", "") || !b.EndParked("in2") {
				t.Errorf("DEL with a corrupt %s: the pod's end not removed, or the peer's not kept without carrier", tc.name)
			}
			b.MustDel()
			c.AssertNoLeftovers(a, b)
		})
	}
}

func TestAgentResumesAfterEtcdRestart(t *testing.T) {
	for _, api := range testenv.APIs() {
		// watching: the agent watches when etcd goes; starting: etcd goes
		// as soon as ADD returned.
		for _, when := range []string{"watching", "starting"} {
			t.Run(api+"/"+when, func(t *testing.T) {
				c, ec := crashableCluster(t, api, 2)
				mp, mq := testcluster.SeedPair(t)
				c.Announce(mp)
				c.Announce(mq)
				a, b := c.NewPod(c.Hosts[0], "primary-pod"), c.NewPod(c.Hosts[1], "pair-pod")
				a.MustAdd()
				if when == "watching" {
					time.Sleep(time.Second) // the agent's loop is watching
				}
				// Down for longer than a request timeout, then back.
				ec.Stop(0)
				time.Sleep(5 * time.Second / 2)
				ec.Restart(0)
				if n := len(a.H.AgentPIDs()); n != 1 {
					t.Fatalf("%d agents after etcd came back, want 1\n%s", n, a.H.LogTail())
				}
				b.MustAdd()
				returned := time.Now()
				if !testcluster.WaitFor(30*time.Second, func() bool { return a.HasLink("in1", "192.0.2.100/24") }) {
					t.Fatalf("the agent did not build the first side's end after the restart\n%s", a.H.LogTail())
				}
				t.Logf("first side's end up %v after the second ADD returned", time.Since(returned))
				assertSeedPairWired(t, a, b)
				a.MustDel()
				b.MustDel()
				c.AssertNoLeftovers(a, b)
			})
		}
	}
}
