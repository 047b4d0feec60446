package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// runCtl runs ratchetctl (built once per test) against the cluster.
func runCtl(t *testing.T, c *testcluster.Cluster) func(args ...string) (string, int) {
	bin := filepath.Join(t.TempDir(), "ratchetctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../utils/ratchetctl").CombinedOutput(); err != nil {
		t.Fatalf("build ratchetctl: %v %s", err, out)
	}
	return func(args ...string) (string, int) {
		full := append([]string{"--etcd-api", c.API, "--etcd-endpoints", c.Etcd.URL, "--etcd-prefix", c.Prefix}, args...)
		out, err := exec.Command(bin, full...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		t.Logf("$ ratchetctl %s  → exit %d\n%s", strings.Join(args, " "), code, out)
		return string(out), code
	}
}

// ratchetctl's link commands end to end, against real agents:
// status and topology, a missing link, a pending link, a same-host veth
// with one pod gone (its end parked), an impairment on a parked end.
func TestRatchetctlShowsAndChangesLinkState(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	ctl := runCtl(t, c)
	c.Announce(&metadata.Pod{Name: "xa", Links: []metadata.Link{{Peer: "xb", IfName: "x1", IP: "192.0.2.1/30", PeerIfName: "x1", PeerIP: "192.0.2.2/30"}}})
	c.Announce(&metadata.Pod{Name: "xb"})
	c.Announce(&metadata.Pod{Name: "sa", Links: []metadata.Link{{Peer: "sb", IfName: "s1", IP: "198.51.100.1/30", PeerIfName: "s1", PeerIP: "198.51.100.2/30"}}})
	c.Announce(&metadata.Pod{Name: "sb"})
	c.Announce(&metadata.Pod{Name: "pa", Links: []metadata.Link{{Peer: "pb", IfName: "p1", IP: "203.0.113.1/30", PeerIfName: "p1", PeerIP: "203.0.113.2/30"}}})
	c.Announce(&metadata.Pod{Name: "pb"})
	xa, xb := c.Hosts[0].NewPod("xa"), c.Hosts[1].NewPod("xb")
	sa, sb := c.Hosts[0].NewPod("sa"), c.Hosts[0].NewPod("sb")
	pa := c.Hosts[0].NewPod("pa") // pb never comes: the link stays pending
	for _, p := range []*testcluster.Pod{xa, xb, sa, sb, pa} {
		p.MustAdd()
	}
	x := "default/" + store.LinkID("xa", "x1", "xb", "x1")
	s := "default/" + store.LinkID("sa", "s1", "sb", "s1")
	pl := "default/" + store.LinkID("pa", "p1", "pb", "p1")

	if _, code := ctl("link", "down", "default/nope.x1--nope2.x1"); code != 2 {
		t.Errorf("link down on a missing link: exit %d, want 2", code)
	}
	if out, code := ctl("link", "set", "default/xb.x1--xa.x1", "--end", "a", "--loss", "30%"); code != 0 || !strings.Contains(out, "a loss 30%") {
		t.Errorf("link set with the ends in the other order: %d %q", code, out)
	}
	ctl("link", "set", x, "--end", "b", "--delay", "50ms")
	ctl("link", "set", x, "--rate", "1mbit")
	time.Sleep(2 * time.Second)
	out, _ := ctl("status")
	if !strings.Contains(out, "sch_netem") || !strings.Contains(out, "bpf") {
		t.Errorf("status does not show each end's impairment and how it is applied")
	}
	ctl("status", "-o", "json")
	ctl("link", "down", x)
	time.Sleep(time.Second)
	out, _ = ctl("topology")
	if !strings.Contains(out, "admin down") {
		t.Errorf("topology does not show the admin state")
	}
	if err := xa.Check(); err != nil {
		t.Errorf("CHECK xa (loss, rate: all applied): %v", err)
	}
	if err := xb.Check(); err == nil || !strings.Contains(err.Error(), "sch_netem") {
		t.Errorf("CHECK xb with a delay not applied: %v", err)
	} else {
		t.Logf("CHECK xb: %v", err)
	}
	ctl("link", "clear", x)
	ctl("link", "up", x)
	if !testcluster.WaitFor(5*time.Second, func() bool { return xa.Ping("192.0.2.2") == nil }) {
		t.Errorf("x up and cleared: no ping")
	}
	time.Sleep(time.Second)
	if err := xa.Check(); err != nil {
		t.Errorf("CHECK xa after clear: %v", err)
	}
	if err := xb.Check(); err != nil {
		t.Errorf("CHECK xb after clear: %v", err)
	}

	// A pending link: down and an impairment are recorded; when the peer
	// comes, the link starts down and impaired.
	ctl("link", "down", pl)
	ctl("link", "set", pl, "--loss", "100%")
	pb := c.Hosts[1].NewPod("pb")
	pb.MustAdd()
	if !testcluster.WaitFor(10*time.Second, func() bool {
		r := c.Link("pa", "p1", "pb", "p1")
		return r.State == store.LinkWired && both(r.A.Applied, r.B.Applied)
	}) {
		t.Errorf("pending link set down and impaired: %+v", c.Link("pa", "p1", "pb", "p1"))
	}
	if _, o := carrier(t, pa, "p1"); o {
		t.Errorf("pending link set down: pa's end has carrier once wired")
	}
	if _, o := carrier(t, pb, "p1"); o {
		t.Errorf("pending link set down: pb's end has carrier once wired")
	}
	ctl("link", "up", pl)
	ctl("link", "clear", pl)
	if !testcluster.WaitFor(5*time.Second, func() bool { return pa.Ping("203.0.113.2") == nil }) {
		t.Errorf("pending link up and cleared: no ping")
	}

	// Same-host veth: sb gone (its end parked on the host), then the
	// link set down and impaired; sb back: down, impaired; then up.
	sb.MustDel()
	ctl("link", "down", s)
	ctl("link", "set", s, "--loss", "100%")
	time.Sleep(time.Second)
	if a, _ := carrier(t, sa, "s1"); a {
		t.Errorf("same-host veth set down while sb is gone: sa's end is still admin up")
	}
	ctl("status")
	sb2 := c.Hosts[0].NewPod("sb")
	sb2.MustAdd()
	if !testcluster.WaitFor(10*time.Second, func() bool {
		r := c.Link("sa", "s1", "sb", "s1")
		return r.State == store.LinkWired && both(r.A.Applied, r.B.Applied)
	}) {
		t.Errorf("parked end set down and impaired, then back: %+v", c.Link("sa", "s1", "sb", "s1"))
	}
	for _, p := range []*testcluster.Pod{sa, sb2} {
		if _, o := carrier(t, p, "s1"); o {
			t.Errorf("set down while parked: %s's end has carrier once back", p.Name)
		}
	}
	ctl("link", "up", s)
	if !testcluster.WaitFor(5*time.Second, func() bool { return sa.Ping("198.51.100.2") != nil }) {
		t.Errorf("up but loss 100%%: ping answered")
	}
	ctl("link", "clear", s)
	if !testcluster.WaitFor(5*time.Second, func() bool { return sa.Ping("198.51.100.2") == nil }) {
		t.Errorf("up and cleared: no ping")
	}
	for _, p := range []*testcluster.Pod{xa, xb, sa, sb2, pa, pb} {
		p.MustDel()
	}
	c.AssertNothingLeft()
}
