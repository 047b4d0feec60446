package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// killPoints are when the agent is killed during an operation: at once
// (before it is asked), and as soon as the operation's first record change
// is visible in etcd (in the middle of its work).
var killPoints = []string{"at-once", "mid-way"}

// during runs op while the host's agent is SIGKILLed at point: at once, or
// as soon as midway holds. It returns op's error.
func during(h *testcluster.Host, point string, midway func() bool, op func() error) error {
	done := make(chan error, 1)
	go func() { done <- op() }()
	if point == "mid-way" {
		testcluster.WaitFor(20*time.Second, midway)
	}
	h.KillAgent(syscall.SIGKILL)
	return <-done
}

// podHost is the host recorded for pod, "" when it has no record.
func podHost(c *testcluster.Cluster, pod string) string {
	rec, _, err := store.GetPod(context.Background(), c.KV, c.Keys, "default", pod)
	if err != nil {
		return ""
	}
	return rec.Host
}

func TestAgentKilledMidAddConvergesWithNothingLeft(t *testing.T) {
	for _, point := range killPoints {
		t.Run(point, func(t *testing.T) {
			c := testcluster.New(t, "v3", 2)
			announced(c, false)
			h := c.Hosts[0]
			h.StartAgent()
			a, b := h.NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
			b.MustAdd()
			if err := during(h, point, func() bool { return podHost(c, a.Name) != "" }, a.Add); err != nil {
				t.Logf("ADD interrupted: %v", err)
				a.MustDel() // what the runtime does after a failed ADD
				a.MustAdd() // and its retry, with an agent started on demand
			} else {
				// The ADD was done before the kill; what came after it (the
				// peer's end up, so this end comes up too) is the next
				// agent's, which a DaemonSet starts.
				h.StartAgent()
			}
			waitWired(t, a, b, 20*time.Second)
			if n := len(h.AgentPIDs()); n > 1 {
				t.Errorf("%d agents on the host", n)
			}
			a.MustDel()
			b.MustDel()
			c.AssertNoLeftovers(a, b)
		})
	}
}

func TestAgentKilledMidDelConvergesWithNothingLeft(t *testing.T) {
	for _, point := range killPoints {
		t.Run(point, func(t *testing.T) {
			c := testcluster.New(t, "v3", 1)
			announced(c, false)
			h := c.Hosts[0]
			h.StartAgent()
			a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
			a.MustAdd()
			b.MustAdd()
			waitWired(t, a, b, 10*time.Second)
			if err := during(h, point, func() bool { return podHost(c, a.Name) == "" }, a.Del); err != nil {
				t.Logf("DEL interrupted: %v", err)
				a.MustDel() // the runtime retries DEL
			}
			if a.HasLink("in1", "") {
				t.Errorf("primary-pod keeps in1 after its DEL: %v", a.Links())
			}
			b.MustDel()
			if !testcluster.WaitFor(15*time.Second, func() bool { return len(c.Records()) == 0 }) {
				t.Errorf("records left: %v\n%s", c.Records(), h.LogTail())
			}
			c.AssertNoLeftovers(a, b)
		})
	}
}

func TestAgentKilledMidRepointConvergesAfterRestart(t *testing.T) {
	for _, point := range killPoints {
		t.Run(point, func(t *testing.T) {
			c := testcluster.New(t, "v3", 3)
			announced(c, false)
			h := c.Hosts[0]
			h.StartAgent()
			a, b1 := h.NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
			a.MustAdd()
			b1.MustAdd()
			waitWired(t, a, b1, 20*time.Second)
			c.Hosts[1].KillAgent(syscall.SIGKILL)
			b2 := c.Hosts[2].NewPod("pair-pod")
			moved := func() bool { return podHost(c, b2.Name) == c.Hosts[2].Name }
			if err := during(h, point, moved, b2.Add); err != nil {
				t.Fatalf("ADD on another host failed: %v", err)
			}
			h.StartAgent() // a DaemonSet restarts it
			start := time.Now()
			if !testcluster.WaitFor(15*time.Second, func() bool { return a.Ping("192.0.2.101") == nil }) {
				t.Fatalf("no ping to the re-created peer after the agent's restart\n%s", h.LogTail())
			}
			t.Logf("ping restored %v after the agent's restart", time.Since(start).Round(time.Millisecond))
			a.MustDel()
			b2.MustDel()
			b1.MustDel()
			c.AssertNoLeftovers(a, b1, b2)
		})
	}
}
