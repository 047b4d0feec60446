package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

func TestPairTimeoutMarksTheLinkFailedAndALatePeerIsStillWired(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	c.PairTimeout = "2s"
	announced(c, false)
	a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
	a.MustAdd()
	var rec store.LinkRecord
	if !testcluster.WaitFor(20*time.Second, func() bool {
		rec = c.Link("primary-pod", "in1", "pair-pod", "in2")
		return rec.State == store.LinkFailed
	}) {
		t.Fatalf("link %+v not failed after pairTimeout\n%s", rec, a.H.LogTail())
	}
	if !strings.Contains(rec.Reason, "pairTimeout") || !strings.Contains(rec.Reason, "pair-pod") {
		t.Errorf("reason %q does not say pairTimeout and name the peer", rec.Reason)
	}
	b.MustAdd()
	waitWired(t, a, b, 20*time.Second)
	if rec = c.Link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkWired {
		t.Errorf("late peer wired but link recorded %s (%s)", rec.State, rec.Reason)
	}
	a.MustDel()
	b.MustDel()
	c.AssertNoLeftovers(a, b)
}

func TestAgentRestartKeepsTheLinksItAdopts(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	announced(c, false)
	h := c.Hosts[0]
	h.StartAgent()
	a, b := h.NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	waitWired(t, a, b, 20*time.Second)
	before := ifindex(t, a, "in1")
	// An upgrade: the old binary stops, the new one starts.
	h.KillAgent(syscall.SIGTERM)
	if !testcluster.WaitFor(10*time.Second, func() bool { return len(h.AgentPIDs()) == 0 }) {
		t.Fatal("agent did not stop on SIGTERM")
	}
	h.StartAgent()
	time.Sleep(2 * time.Second) // its start-up reconciliation
	if after := ifindex(t, a, "in1"); after != before {
		t.Errorf("in1 rebuilt by the restarted agent (ifindex %s → %s), want it adopted", before, after)
	}
	if err := a.Ping("192.0.2.101"); err != nil {
		t.Errorf("ping after the agent's restart: %v", err)
	}
	if err := a.Check(); err != nil {
		t.Errorf("CHECK after the agent's restart: %v", err)
	}
	a.MustDel()
	b.MustDel()
	c.AssertNoLeftovers(a, b)
}

// ifindex is the interface index of ifname in the pod.
func ifindex(t *testing.T, p *testcluster.Pod, ifname string) string {
	t.Helper()
	out := p.MustExec("ip", "-o", "link", "show", "dev", ifname)
	// ip may print a warning line first ("Error: Peer netns reference is
	// invalid." for a vxlan whose socket netns it cannot name).
	for _, line := range strings.Split(out, "\n") {
		if idx, rest, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(rest, ifname) {
			return idx
		}
	}
	t.Fatalf("no %s in %q", ifname, out)
	return ""
}
