package main

// Reliability suite, part 3: races between the commands of two pods, and
// between a pod's incarnations.

import (
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestAddRacingPeerDelLeavesNothing(t *testing.T) {
	trials := map[string]int{"v3": 50, "v2": 10}
	if testing.Short() {
		trials = map[string]int{"v3": 5, "v2": 3}
	}
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		c := newCluster(t, api, 1)
		h := c.Hosts[0]
		c.AnnounceSeedPair()
		var slowest time.Duration
		for i := range trials[api] {
			// Alternate which side declares the link.
			adder, deleted := h.NewPod("primary-pod"), h.NewPod("pair-pod")
			if i%2 == 1 {
				adder, deleted = deleted, adder
			}
			deleted.MustAdd()
			start := make(chan struct{})
			var wg sync.WaitGroup
			var addErr, delErr error
			wg.Add(2)
			go func() { defer wg.Done(); <-start; addErr = adder.Add() }()
			go func() { defer wg.Done(); <-start; delErr = deleted.Del() }()
			began := time.Now()
			close(start)
			wg.Wait()
			slowest = max(slowest, time.Since(began))
			if addErr != nil || delErr != nil {
				t.Errorf("trial %d: ADD of %s: %v; DEL of %s: %v\n%s", i, adder.Name, addErr, deleted.Name, delErr, h.LogTail())
			}
			adder.MustDel()
			deleted.MustDel()
			c.AssertNoLeftovers(adder, deleted)
			if t.Failed() {
				t.Fatalf("trial %d of %d failed", i, trials[api])
			}
		}
		t.Logf("%d trials; slowest ADD/DEL race %v", trials[api], slowest)
	})
}

func TestRecreatedPodNewIncarnationIsWiredByTheOneAgent(t *testing.T) {
	c := newCluster(t, "v3", 2)
	c.AnnounceSeedPair()
	a1, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
	a1.MustAdd()
	a2 := c.Hosts[0].NewPod("primary-pod")
	a2.MustAdd()
	if n := len(c.Hosts[0].AgentPIDs()); n != 1 {
		t.Errorf("%d agents on the first host, want 1", n)
	}
	b.MustAdd()
	if !testcluster.WaitFor(20*time.Second, func() bool { return a2.HasLink("in1", "192.0.2.100/24") }) {
		t.Fatalf("the new incarnation's end was not built\n%s", a2.H.LogTail())
	}
	assertSeedPairWired(t, a2, b)
	if a1.HasLink("in1", "") {
		t.Errorf("the old incarnation got a link end")
	}
	a1.MustDel() // the runtime's late DEL of the old sandbox
	assertSeedPairWired(t, a2, b)
	a2.MustDel()
	b.MustDel()
	c.AssertNoLeftovers(a1, a2, b)
}
