package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// pingAgent is the agent that answers on the host's socket (nil: none).
func pingAgent(h *testcluster.Host) *agentapi.Info {
	var ans agentapi.Answer
	c := agentapi.NewClient(h.Socket(), 2*time.Second)
	if err := c.Call(context.Background(), agentapi.PathPing, struct{}{}, &ans); err != nil {
		return nil
	}
	return ans.Agent
}

// The plugin runs before the DaemonSet's agent is up: it starts an agent on
// demand; then the resident agent starts, the on-demand one hands the
// socket over and exits, and the resident one adopts the links. Plugins
// that call during the take-over all succeed (none starts a second
// on-demand agent, none gets code 11).
func TestResidentAgentTakesOverFromAnOnDemandAgent(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	announced(c, false)
	h := c.Hosts[0]
	a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
	a.MustAdd() // starts the on-demand agent
	b.MustAdd()
	waitWired(t, a, b, 10*time.Second)
	onDemand := h.AgentPIDs()
	if info := pingAgent(h); len(onDemand) != 1 || info == nil || !info.OnDemand {
		t.Fatalf("before the take-over: agents %v, answering %+v; want one on-demand agent", onDemand, info)
	}
	before := ifindex(t, a, "in1")

	// Through the take-over: plugins' calls as the plugin makes them
	// (starting an agent when none listens), as fast as they come, and
	// plain pods' ADDs and DELs.
	stop := make(chan struct{})
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	starter := &agentapi.Starter{Binary: filepath.Join(c.CNI.BinDir, "ratchetd"), Netconf: h.Netconf(nil),
		NetconfPath: filepath.Join(h.AgentDir, "ratchetd.netconf"), Wait: 10 * time.Second}
	client := agentapi.NewClient(h.Socket(), 10*time.Second)
	var mu sync.Mutex
	answered := map[int]bool{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				var ans agentapi.Answer
				if err := client.CallStarting(context.Background(), starter, agentapi.PathPing, struct{}{}, &ans); err != nil {
					errs <- fmt.Errorf("call during the take-over: %w", err)
					return
				}
				calls.Add(1)
				mu.Lock()
				answered[ans.Agent.PID] = true
				mu.Unlock()
			}
		}()
	}
	var plain []*testcluster.Pod
	for i := range 2 {
		p := h.NewPod(fmt.Sprintf("plain-%d", i))
		plain = append(plain, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := p.Add(); err != nil {
					errs <- fmt.Errorf("ADD %s during the take-over: %w", p.Name, err)
					return
				}
				if err := p.Del(); err != nil {
					errs <- fmt.Errorf("DEL %s during the take-over: %w", p.Name, err)
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	h.StartAgent() // the DaemonSet's pod
	var resident *agentapi.Info
	if !testcluster.WaitFor(20*time.Second, func() bool {
		resident = pingAgent(h)
		return resident != nil && !resident.OnDemand
	}) {
		t.Fatalf("the resident agent did not take the socket over: answering %+v\n%s", resident, h.LogTail())
	}
	t.Logf("resident agent serves %v after its start", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second) // plugins keep calling the new agent
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d plugin calls during the take-over, answered by agents %v", calls.Load(), answered)
	for pid := range answered {
		if pid != onDemand[0] && pid != resident.PID {
			t.Errorf("a call was answered by agent %d, neither the on-demand %d nor the resident %d", pid, onDemand[0], resident.PID)
		}
	}

	if !testcluster.WaitFor(15*time.Second, func() bool {
		pids := h.AgentPIDs()
		return len(pids) == 1 && pids[0] == resident.PID
	}) {
		t.Fatalf("agents %v after the take-over, want only the resident %d (on-demand was %v)\n%s",
			h.AgentPIDs(), resident.PID, onDemand, h.LogTail())
	}
	if slices.Contains(onDemand, resident.PID) {
		t.Fatalf("the resident agent has the on-demand agent's PID %d", resident.PID)
	}
	if after := ifindex(t, a, "in1"); after != before {
		t.Errorf("in1 rebuilt by the resident agent (ifindex %s → %s), want it adopted", before, after)
	}
	if err := a.Ping("192.0.2.101"); err != nil {
		t.Errorf("ping after the take-over: %v", err)
	}
	if err := a.Check(); err != nil {
		t.Errorf("CHECK after the take-over: %v", err)
	}
	key := c.Keys.Agent(h.Name)
	var rec store.AgentRecord
	if !testcluster.WaitFor(15*time.Second, func() bool {
		var err error
		rec, _, err = store.GetJSON[store.AgentRecord](context.Background(), c.KV, key)
		return err == nil && rec.PID == resident.PID
	}) {
		t.Errorf("agent record %+v, want the resident agent's (PID %d)", rec, resident.PID)
	}
	if rec.OnDemand {
		t.Errorf("agent record %+v says on demand", rec)
	}
	// The resident agent stays when the host has no ratchet pods.
	a.MustDel()
	b.MustDel()
	time.Sleep(7 * time.Second) // beyond an on-demand agent's idle grace
	if pids := h.AgentPIDs(); len(pids) != 1 || pids[0] != resident.PID {
		t.Errorf("agents %v with no pods left, want the resident %d", pids, resident.PID)
	}
	c.AssertNoLeftovers(append(plain, a, b)...)
}

// A resident agent replaced by another (a DaemonSet pod deleted while its
// successor starts) keeps serving until it is stopped; the successor waits
// for it, then serves, and the links stay.
func TestResidentAgentWaitsForTheResidentItReplaces(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	announced(c, false)
	h := c.Hosts[0]
	h.StartAgent()
	old := pingAgent(h)
	if old == nil || old.OnDemand {
		t.Fatalf("first agent answers %+v", old)
	}
	a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	waitWired(t, a, b, 10*time.Second)
	before := ifindex(t, a, "in1")
	h.StartAgent() // returns once the old agent answers: the new one waits
	var next int
	for _, pid := range h.AgentPIDs() {
		if pid != old.PID {
			next = pid
		}
	}
	if next == 0 {
		t.Fatalf("second agent not running: %v\n%s", h.AgentPIDs(), h.LogTail())
	}
	time.Sleep(2 * time.Second)
	if info := pingAgent(h); info == nil || info.PID != old.PID {
		t.Fatalf("while the first agent runs, %+v answers, want PID %d", info, old.PID)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", next)); err != nil {
		t.Fatalf("the waiting agent exited: %v\n%s", err, h.LogTail())
	}
	if err := syscall.Kill(old.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var info *agentapi.Info
	if !testcluster.WaitFor(20*time.Second, func() bool {
		info = pingAgent(h)
		return info != nil && info.PID == next
	}) {
		t.Fatalf("after the first agent's exit, %+v answers, want PID %d\n%s", info, next, h.LogTail())
	}
	if after := ifindex(t, a, "in1"); after != before {
		t.Errorf("in1 rebuilt by the next agent (ifindex %s → %s), want it adopted", before, after)
	}
	if err := a.Ping("192.0.2.101"); err != nil {
		t.Errorf("ping after the replacement: %v", err)
	}
	a.MustDel()
	b.MustDel()
	c.AssertNoLeftovers(a, b)
}
