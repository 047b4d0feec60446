package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/impair"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/netem"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
	"github.com/ratchet-cni/ratchet/internal/wiring"
)

// impairedPair is one link of TestImpairmentsAndLinkStateOnRealLinks.
type impairedPair struct {
	name   string
	a, b   *testcluster.Pod
	ifname string
	bIP    string
	id     string
}

// setLink changes a link's record as `ratchetctl link` does.
func setLink(t *testing.T, c *testcluster.Cluster, id string, change func(*store.LinkRecord)) {
	t.Helper()
	_, _, err := store.Update(context.Background(), c.KV, c.Keys.Link("default", id), func(r *store.LinkRecord) error {
		change(r)
		r.NetemSet = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitApplied waits until the agents recorded both ends' impairment as
// applied the way ok accepts.
func waitApplied(t *testing.T, c *testcluster.Cluster, p impairedPair, ok func(a, b string) bool) store.LinkRecord {
	t.Helper()
	var rec store.LinkRecord
	if !testcluster.WaitFor(10*time.Second, func() bool {
		r, _, err := store.GetLink(context.Background(), c.KV, c.Keys, "default", p.id)
		rec = r
		return err == nil && ok(r.A.Applied, r.B.Applied)
	}) {
		t.Fatalf("link %s: impairment never recorded as wanted: a %q, b %q", p.id, rec.A.Applied, rec.B.Applied)
	}
	return rec
}

// both reports whether both ends applied something without a gap.
func both(a, b string) bool { return a != "" && b != "" && !strings.Contains(a+b, "not applied") }

// carrier reports an end's admin state and carrier.
func carrier(t *testing.T, p *testcluster.Pod, ifname string) (admin, oper bool) {
	t.Helper()
	info, err := wiring.Lookup(context.Background(), p.Netns, ifname)
	if err != nil {
		t.Fatalf("%s of %s: %v", ifname, p.Name, err)
	}
	return info.AdminUp, info.OperUp
}

// Impairments and admin state on real links, across two simulated hosts
// (vxlan) and on one (veth), applied by the node agents from the link
// records: loss both ways and one way, a rate limit, clearing, a delay (or
// its "not applied" where the kernel has no sch_netem), down and up kept
// across an agent restart, and the survivor's end parked while its peer is
// re-created.
func TestImpairmentsAndLinkStateOnRealLinks(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	xa, xb, sa, sb := twoPairs(c, [4]string{"192.0.2.1/30", "192.0.2.2/30", "198.51.100.1/30", "198.51.100.2/30"})
	caps, err := impair.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pairs := []impairedPair{
		{"across hosts", xa, xb, "x1", "192.0.2.2", store.LinkID("xa", "x1", "xb", "x1")},
		{"one host", sa, sb, "s1", "198.51.100.2", store.LinkID("sa", "s1", "sb", "s1")},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if r := p.a.PingStats(p.bIP, 3, "0.2"); r.Received != 3 {
				t.Fatalf("before any impairment: %v", r)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = &netem.Spec{Loss: "100%"}, &netem.Spec{Loss: "100%"} })
			waitApplied(t, c, p, both)
			if r := p.a.PingStats(p.bIP, 5, "0.2"); r.Received != 0 {
				t.Fatalf("loss 100%%: %v, want no reply", r)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = &netem.Spec{Loss: "30%"}, &netem.Spec{Loss: "30%"} })
			waitApplied(t, c, p, both)
			time.Sleep(200 * time.Millisecond) // the agents record after applying
			if r := p.a.PingStats(p.bIP, 200, "0.01"); r.LossFraction() < 0.40 || r.LossFraction() > 0.62 {
				t.Errorf("loss 30%% each way: %v, want 40–62%% without reply", r)
			}
			ends := func(r *store.LinkRecord) (*store.LinkEnd, *store.LinkEnd) { return r.EndsOf(p.a.Name) }
			setLink(t, c, p.id, func(r *store.LinkRecord) { a, b := ends(r); a.Netem, b.Netem = &netem.Spec{Loss: "30%"}, nil })
			waitApplied(t, c, p, func(a, b string) bool { return (a == "") != (b == "") })
			time.Sleep(200 * time.Millisecond)
			if r := p.a.PingStats(p.bIP, 200, "0.01"); r.LossFraction() < 0.20 || r.LossFraction() > 0.40 {
				t.Errorf("loss 30%% on a's end only: %v, want 20–40%% without reply", r)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) {
				r.A.Netem, r.B.Netem = &netem.Spec{Rate: "1mbit"}, &netem.Spec{Rate: "1mbit"}
			})
			waitApplied(t, c, p, both)
			time.Sleep(200 * time.Millisecond)
			bps, err := throughput(p)
			if err != nil || bps > 1.2e6 {
				t.Errorf("rate 1mbit: %.3f Mbit/s (%v), want ≤ 1.2", bps/1e6, err)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = nil, nil })
			waitApplied(t, c, p, func(a, b string) bool { return a == "" && b == "" })
			time.Sleep(200 * time.Millisecond)
			if bps, err := throughput(p); err != nil || bps < 20e6 {
				t.Errorf("cleared: %.1f Mbit/s (%v), want full speed back", bps/1e6, err)
			}
			if r := p.a.PingStats(p.bIP, 3, "0.2"); r.Received != 3 {
				t.Errorf("cleared: %v, want every reply", r)
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) {
				r.A.Netem, r.B.Netem = &netem.Spec{Delay: "50ms"}, &netem.Spec{Delay: "50ms"}
			})
			if caps.Netem {
				waitApplied(t, c, p, both)
				if r := p.a.PingStats(p.bIP, 3, "0.2"); r.Received != 3 || r.MinRTT < 100 {
					t.Errorf("delay 50ms each way: %v, want RTT ≥ 100 ms", r)
				}
			} else {
				waitApplied(t, c, p, func(a, b string) bool {
					return strings.Contains(a, "not applied: delay") && strings.Contains(a, "sch_netem") && strings.Contains(b, "sch_netem")
				})
				if err := p.a.Check(); err == nil || !strings.Contains(err.Error(), "sch_netem") {
					t.Errorf("CHECK with a delay the kernel cannot apply = %v, want it named", err)
				}
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.A.Netem, r.B.Netem = nil, nil })
			waitApplied(t, c, p, func(a, b string) bool { return a == "" && b == "" })

			// Down and up; the state outlives an agent restart.
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.Admin = store.AdminDown })
			noCarrier := func() bool {
				_, oa := carrier(t, p.a, p.ifname)
				_, ob := carrier(t, p.b, p.ifname)
				return !oa && !ob
			}
			if !testcluster.WaitFor(5*time.Second, noCarrier) {
				t.Fatal("link down: an end still has carrier")
			}
			if r := p.a.PingStats(p.bIP, 3, "0.2"); r.Received != 0 {
				t.Fatalf("link down: %v, want no reply", r)
			}
			p.a.H.KillAgent(syscall.SIGKILL)
			p.a.H.StartAgent()
			time.Sleep(time.Second) // the new agent's first reconcile
			if !noCarrier() {
				t.Fatal("after an agent restart the link that is down has carrier again")
			}
			setLink(t, c, p.id, func(r *store.LinkRecord) { r.Admin = store.AdminUp })
			if !testcluster.WaitFor(5*time.Second, func() bool { return p.a.Ping(p.bIP) == nil }) {
				t.Fatal("link up: no ping")
			}
			if err := p.a.Check(); err != nil {
				t.Errorf("CHECK after up: %v", err)
			}
		})
	}

	// The peer of the cross-host link goes away: xa keeps x1, parked
	// without carrier; the peer re-created on its host, then on xa's, gets
	// the link back.
	xb.MustDel()
	if !testcluster.WaitFor(5*time.Second, func() bool { a, o := carrier(t, xa, "x1"); return !a && !o }) {
		t.Fatal("the survivor's end is not parked (down) while its peer is gone")
	}
	xb2 := c.Hosts[1].NewPod("xb")
	xb2.MustAdd()
	if !testcluster.WaitFor(5*time.Second, func() bool { return xa.Ping("192.0.2.2") == nil }) {
		t.Fatal("peer re-created on its host: no ping")
	}
	xb2.MustDel()
	xb3 := c.Hosts[0].NewPod("xb")
	xb3.MustAdd()
	if !testcluster.WaitFor(5*time.Second, func() bool { return xa.Ping("192.0.2.2") == nil }) {
		t.Fatal("peer re-created on the survivor's host: no ping")
	}
	// The peer of the same-host veth goes away: sa keeps s1 (the veth's
	// other end is parked on the host), without carrier; the peer back on
	// the host gets that very veth, then one on the other host a vxlan.
	before, err := wiring.Lookup(context.Background(), sa.Netns, "s1")
	if err != nil {
		t.Fatal(err)
	}
	sb.MustDel()
	if !testcluster.WaitFor(5*time.Second, func() bool { _, o := carrier(t, sa, "s1"); return !o }) {
		t.Fatal("the survivor's veth end is not kept without carrier while its peer is gone")
	}
	sb2 := c.Hosts[0].NewPod("sb")
	sb2.MustAdd()
	if !testcluster.WaitFor(5*time.Second, func() bool { return sa.Ping("198.51.100.2") == nil }) {
		t.Fatal("peer re-created on the same host: no ping")
	}
	if after, err := wiring.Lookup(context.Background(), sa.Netns, "s1"); err != nil || after.Index != before.Index {
		t.Fatalf("the survivor's veth end was rebuilt (index %d, was %d; %v)", after.Index, before.Index, err)
	}
	sb2.MustDel()
	sb3 := c.Hosts[1].NewPod("sb")
	sb3.MustAdd()
	if !testcluster.WaitFor(5*time.Second, func() bool { return sa.Ping("198.51.100.2") == nil }) {
		t.Fatal("peer re-created on another host: no ping")
	}
	// The survivor kept its veth: the parked end is carried to the other
	// host underneath (stitched), and given back when the peer returns.
	if after, err := wiring.Lookup(context.Background(), sa.Netns, "s1"); err != nil || after.Index != before.Index || after.Kind != "veth" {
		t.Fatalf("peer on another host: the survivor's veth end was rebuilt (%+v, was index %d; %v)", after, before.Index, err)
	}
	sb3.MustDel()
	if !testcluster.WaitFor(5*time.Second, func() bool { _, o := carrier(t, sa, "s1"); return !o }) {
		t.Fatal("the survivor's stitched end is not down while its peer is gone again")
	}
	sb4 := c.Hosts[0].NewPod("sb")
	sb4.MustAdd()
	if !testcluster.WaitFor(5*time.Second, func() bool { return sa.Ping("198.51.100.2") == nil }) {
		t.Fatal("peer back on the survivor's host: no ping")
	}
	if after, err := wiring.Lookup(context.Background(), sa.Netns, "s1"); err != nil || after.Index != before.Index {
		t.Fatalf("peer back on the host: the survivor's veth end was rebuilt (%+v; %v)", after, err)
	}
	sb3 = sb4
	for _, p := range []*testcluster.Pod{xa, xb3, sa, sb3} {
		p.MustDel()
	}
	c.AssertNoLeftovers()
}

// throughput measures a TCP transfer from p.a to p.b for 2 s.
func throughput(p impairedPair) (float64, error) {
	return testenv.Throughput(p.a.Netns, p.b.Netns, p.bIP, 2*time.Second)
}

// twoPairs announces and adds a cross-host pair xa (host 0) – xb (host 1)
// on x1 and a same-host pair sa – sb (host 0) on s1, with the addresses
// xa, xb, sa, sb.
func twoPairs(c *testcluster.Cluster, ip [4]string) (xa, xb, sa, sb *testcluster.Pod) {
	c.Announce(&metadata.Pod{Name: "xa", Links: []metadata.Link{{Peer: "xb", IfName: "x1", IP: ip[0], PeerIfName: "x1", PeerIP: ip[1]}}})
	c.Announce(&metadata.Pod{Name: "xb"})
	c.Announce(&metadata.Pod{Name: "sa", Links: []metadata.Link{{Peer: "sb", IfName: "s1", IP: ip[2], PeerIfName: "s1", PeerIP: ip[3]}}})
	c.Announce(&metadata.Pod{Name: "sb"})
	xa, xb = c.Hosts[0].NewPod("xa"), c.Hosts[1].NewPod("xb")
	sa, sb = c.Hosts[0].NewPod("sa"), c.Hosts[0].NewPod("sb")
	for _, p := range []*testcluster.Pod{xa, xb, sa, sb} {
		p.MustAdd()
	}
	return xa, xb, sa, sb
}
