package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// assertWired checks that both ends exist, ping works both ways, and CHECK
// passes on both pods.
func assertSeedPairWired(t *testing.T, a, b *testcluster.Pod) {
	t.Helper()
	if !a.HasLink("in1", "192.0.2.100/24") || !b.HasLink("in2", "192.0.2.101/24") {
		t.Fatalf("link ends missing after the second ADD:\n%s\n%s", a.MustExec("ip", "-o", "addr"), b.MustExec("ip", "-o", "addr"))
	}
	if err := a.Ping("192.0.2.101"); err != nil {
		t.Errorf("ping primary→pair: %v", err)
	}
	if err := b.Ping("192.0.2.100"); err != nil {
		t.Errorf("ping pair→primary: %v", err)
	}
	for _, p := range []*testcluster.Pod{a, b} {
		if err := p.Check(); err != nil {
			t.Errorf("CHECK %s: %v", p.Name, err)
		}
	}
}

func TestSameHostPairWiredInBothOrders(t *testing.T) {
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		for _, order := range []string{"primary-first", "pair-first"} {
			t.Run(order, func(t *testing.T) {
				c := testcluster.New(t, api, 1)
				c.AnnounceSeedPair()
				a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[0].NewPod("pair-pod")
				first, second := ordered(order, a, b)
				first.MustAdd()
				second.MustAdd()
				assertSeedPairWired(t, a, b)
				if rec := c.Link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkWired || rec.VNI != 0 {
					t.Errorf("link record %+v, want wired veth", rec)
				}
				first.MustDel()
				if !second.EndParked(ifOf(second)) {
					t.Errorf("DEL of %s: the peer's end is not kept without carrier", first.Name)
				}
				second.MustDel()
				c.AssertNothingLeft()
			})
		}
	})
}

// ordered returns a, b, or b, a when order is "pair-first".
func ordered(order string, a, b *testcluster.Pod) (first, second *testcluster.Pod) {
	if order == "pair-first" {
		return b, a
	}
	return a, b
}

// ifOf is the seed interface of the pod.
func ifOf(p *testcluster.Pod) string {
	if p.Name == "primary-pod" {
		return "in1"
	}
	return "in2"
}

func TestCrossHostPairWiredInBothOrders(t *testing.T) {
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		for _, order := range []string{"primary-first", "pair-first"} {
			t.Run(order, func(t *testing.T) {
				c := testcluster.New(t, api, 2)
				c.AnnounceSeedPair()
				a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
				first, second := ordered(order, a, b)
				first.MustAdd()
				second.MustAdd()
				returned := time.Now()
				if !testcluster.WaitFor(10*time.Second, func() bool { return first.HasLink(ifOf(first), "192.0.2.") }) {
					t.Fatalf("first side's agent did not build its end\n%s", first.H.LogTail())
				}
				t.Logf("first side's end up %v after the second ADD returned", time.Since(returned))
				assertSeedPairWired(t, a, b)
				rec := c.Link("primary-pod", "in1", "pair-pod", "in2")
				if rec.VNI < 4096 || !testcluster.WaitFor(5*time.Second, func() bool {
					return c.Link("primary-pod", "in1", "pair-pod", "in2").State == store.LinkWired
				}) {
					t.Errorf("link record %+v, want wired vxlan", c.Link("primary-pod", "in1", "pair-pod", "in2"))
				}
				first.MustDel()
				second.MustDel()
				c.AssertNothingLeft()
			})
		}
	})
}

func TestPairAddedAtOnceGetsExactlyOneVeth(t *testing.T) {
	trials := map[string]int{"v3": 50, "v2": 20}
	if testing.Short() {
		trials = map[string]int{"v3": 5, "v2": 5}
	}
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		c := testcluster.New(t, api, 1)
		c.AnnounceSeedPair()
		for i := range trials[api] {
			a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[0].NewPod("pair-pod")
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for j, p := range []*testcluster.Pod{a, b} {
				wg.Add(1)
				go func() { defer wg.Done(); errs[j] = p.Add() }()
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("trial %d: ADD errors %v\n%s", i, errs, c.Hosts[0].LogTail())
			}
			assertOneLink(t, a, "in1")
			assertOneLink(t, b, "in2")
			if err := a.Ping("192.0.2.101"); err != nil {
				t.Fatalf("trial %d: %v", i, err)
			}
			a.MustDel()
			b.MustDel()
			c.AssertNothingLeft()
		}
	})
}

// assertOneLink checks that the pod has exactly eth0 and one link ifname.
func assertOneLink(t *testing.T, p *testcluster.Pod, ifname string) {
	t.Helper()
	links := p.Links()
	if len(links) != 2 || !strings.Contains(strings.Join(links, " "), ifname) {
		t.Fatalf("pod %s has links %v, want eth0 and %s\n%s", p.Name, links, ifname, p.H.LogTail())
	}
}

func TestRouterChainWiredWhateverTheOrder(t *testing.T) {
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 2, 0, 3}, {2, 0, 3, 1}}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			c := testcluster.New(t, "v3", 2)
			specs := testcluster.RouterChain(t)
			pods := make([]*testcluster.Pod, 4)
			for i, m := range specs {
				c.Announce(m)
				pods[i] = c.Hosts[i/2].NewPod(m.Name) // centosa, quagga-a on host 0
			}
			for _, i := range order {
				pods[i].MustAdd()
			}
			testcluster.AssertLinksPing(t, specs, pods, 10*time.Second)
			for _, p := range pods {
				if err := p.Check(); err != nil {
					t.Errorf("CHECK %s: %v", p.Name, err)
				}
			}
			for _, p := range pods {
				p.MustDel()
			}
			c.AssertNothingLeft()
		})
	}
}

func TestRecreatedPodGetsItsLinksBack(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	c.AnnounceSeedPair()
	a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[0].NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	a.MustDel()
	a2 := c.Hosts[0].NewPod("primary-pod")
	a2.MustAdd()
	assertSeedPairWired(t, a2, b)
	if rec := c.Link("primary-pod", "in1", "pair-pod", "in2"); rec.A.ContainerID != a2.RT.ContainerID && rec.B.ContainerID != a2.RT.ContainerID {
		t.Errorf("link record still names the old container: %+v", rec)
	}
	// Re-created again without a DEL first (the runtime lost track): the new
	// incarnation replaces the old record; the old one's late DEL must not
	// break the new one.
	a3 := c.Hosts[0].NewPod("primary-pod")
	a3.MustAdd()
	assertSeedPairWired(t, a3, b)
	if a2.HasLink("in1", "") {
		t.Errorf("old incarnation still has its link end")
	}
	a2.MustDel()
	assertSeedPairWired(t, a3, b)
	a3.MustDel()
	b.MustDel()
	c.AssertNothingLeft()
}

func TestPodLearnsLinksAnnouncedTowardsIt(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	c.Announce(&metadata.Pod{Name: "hub", Links: []metadata.Link{
		{Peer: "spoke", IfName: "s1", IP: "192.0.2.1/30", PeerIfName: "h1", PeerIP: "192.0.2.2/30"},
		{Peer: "spoke", IfName: "s2", IP: "192.0.2.5/30", PeerIfName: "h2", PeerIP: "192.0.2.6/30"},
	}})
	c.Announce(&metadata.Pod{Name: "spoke"}) // declares and expects nothing itself
	spoke := c.Hosts[1].NewPod("spoke")
	hub := c.Hosts[0].NewPod("hub")
	spoke.MustAdd()
	hub.MustAdd()
	for _, ip := range []string{"192.0.2.2", "192.0.2.6"} {
		if !testcluster.WaitFor(10*time.Second, func() bool { return hub.Ping(ip) == nil }) {
			t.Errorf("hub cannot reach spoke at %s\n%s", ip, c.Hosts[1].LogTail())
		}
	}
	hub.MustDel()
	spoke.MustDel()
	c.AssertNothingLeft()
}
