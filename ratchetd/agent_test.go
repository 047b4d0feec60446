package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// seedPair is the seed's pair: primary-pod declares in1--in2, pair-pod
// only waits for it (no description of its own when bare).
func seedPair(bare bool) (primary, pair *metadata.Pod) {
	primary = &metadata.Pod{Name: "primary-pod", Primary: true, Links: []metadata.Link{{
		Peer: "pair-pod", IfName: "in1", IP: "192.0.2.100/24", PeerIfName: "in2", PeerIP: "192.0.2.101/24",
	}}}
	pair = &metadata.Pod{Name: "pair-pod"}
	if !bare {
		pair.Expects = []metadata.Link{{Peer: "primary-pod", IfName: "in2", IP: "192.0.2.101/24", PeerIfName: "in1", PeerIP: "192.0.2.100/24"}}
	}
	return primary, pair
}

func announced(c *testcluster.Cluster, bare bool) {
	p, q := seedPair(bare)
	c.Announce(p)
	c.Announce(q)
}

// waitWired waits until both ends are up and ping works both ways.
func waitWired(t *testing.T, a, b *testcluster.Pod, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ok := testcluster.WaitFor(within, func() bool {
		return a.HasLink("in1", "192.0.2.100/24") && b.HasLink("in2", "192.0.2.101/24") && a.Ping("192.0.2.101") == nil
	})
	if !ok {
		t.Fatalf("pair not wired within %v\n%s\n%s", within, a.H.LogTail(), b.H.LogTail())
	}
	if err := b.Ping("192.0.2.100"); err != nil {
		t.Errorf("ping pair→primary: %v", err)
	}
	return time.Since(start)
}

func TestCrossHostLinkWiredWhenTheNonDeclarerComesFirst(t *testing.T) {
	for _, api := range []string{"v2", "v3"} {
		t.Run(api, func(t *testing.T) {
			c := testcluster.New(t, api, 2)
			announced(c, true)
			b, a := c.Hosts[1].NewPod("pair-pod"), c.Hosts[0].NewPod("primary-pod")
			b.MustAdd()
			a.MustAdd()
			t.Logf("wired %v after the declarer's ADD returned", waitWired(t, a, b, 20*time.Second))
			a.MustDel()
			b.MustDel()
			c.AssertNoLeftovers(a, b)
		})
	}
}

func TestConcurrentFirstAddsStartExactlyOneAgentWhichExitsAfterTheLastDel(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	h := c.Hosts[0]
	var pods []*testcluster.Pod
	for i := range 10 {
		a, z := fmt.Sprintf("a%d", i), fmt.Sprintf("z%d", i)
		c.Announce(&metadata.Pod{Name: a, Links: []metadata.Link{{Peer: z, IfName: "p0", IP: fmt.Sprintf("10.200.%d.1/30", i),
			PeerIfName: "p0", PeerIP: fmt.Sprintf("10.200.%d.2/30", i)}}})
		c.Announce(&metadata.Pod{Name: z})
		pods = append(pods, h.NewPod(a), h.NewPod(z))
	}
	if n := len(h.AgentPIDs()); n != 0 {
		t.Fatalf("%d agents before the first ADD", n)
	}
	forAll(t, pods, (*testcluster.Pod).Add)
	if pids := h.AgentPIDs(); len(pids) != 1 {
		t.Fatalf("agents after 20 concurrent first ADDs: %v, want exactly one\n%s", pids, h.LogTail())
	}
	for i := 0; i < len(pods); i += 2 {
		if !testcluster.WaitFor(10*time.Second, func() bool { return pods[i].HasLink("p0", "") && pods[i+1].HasLink("p0", "") }) {
			t.Errorf("pair %s--%s not wired", pods[i].Name, pods[i+1].Name)
		}
	}
	forAll(t, pods, (*testcluster.Pod).Del)
	start := time.Now()
	if !testcluster.WaitFor(30*time.Second, func() bool { return len(h.AgentPIDs()) == 0 }) {
		t.Fatalf("on-demand agent still runs 30s after the last DEL\n%s", h.LogTail())
	}
	t.Logf("on-demand agent exited %v after the last DEL", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(h.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the agent exited: %v", err)
	}
	c.AssertNoLeftovers(pods...)
}

// forAll runs fn for every pod at once and fails on any error.
func forAll(t *testing.T, pods []*testcluster.Pod, fn func(*testcluster.Pod) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, p := range pods {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(p) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%v\n%s", err, pods[0].H.LogTail())
	}
}

func TestPeerRecreatedOnAnotherHostIsRepointedAndPingRestored(t *testing.T) {
	c := testcluster.New(t, "v3", 3)
	announced(c, false)
	a, b1 := c.Hosts[0].NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
	a.MustAdd()
	b1.MustAdd()
	waitWired(t, a, b1, 20*time.Second)
	// Host 1 is lost: its pod is re-created on host 2 without a DEL there.
	c.Hosts[1].KillAgent(syscall.SIGKILL)
	b2 := c.Hosts[2].NewPod("pair-pod")
	start := time.Now()
	b2.MustAdd()
	if !testcluster.WaitFor(10*time.Second, func() bool { return a.Ping("192.0.2.101") == nil }) {
		t.Fatalf("no ping from primary-pod to the re-created pair-pod\n%s", a.H.LogTail())
	}
	t.Logf("peer re-created on another host: ping restored %v after its ADD started", time.Since(start).Round(time.Millisecond))
	if rec := c.Link("primary-pod", "in1", "pair-pod", "in2"); rec.VNI == 0 {
		t.Errorf("link has no VNI after the re-point: %+v", rec)
	}
	a.MustDel()
	b2.MustDel()
	b1.MustDel() // the lost host's DEL, when it comes back
	c.AssertNoLeftovers(a, b1, b2)
}

func TestAgentUnreachableAddIsCode11NamingTheSocketAndDelStillCleans(t *testing.T) {
	c := testcluster.New(t, "v3", 1)
	announced(c, false)
	h := c.Hosts[0]
	a, b := h.NewPod("primary-pod"), h.NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	waitWired(t, a, b, 10*time.Second)
	h.KillAgent(syscall.SIGKILL)
	bad := "/proc/version/ratchetd.sock" // no agent can be started there
	unreachable := func(conf map[string]any) { conf["agent"] = map[string]any{"socket": bad} }
	d := h.NewPod("third-pod")
	d.Reconfigure(unreachable)
	err := d.Add()
	var cerr *types.Error
	if !errors.As(err, &cerr) || cerr.Code != 11 || !strings.Contains(cerr.Msg, bad) {
		t.Fatalf("ADD without an agent = %v, want code 11 naming %s", err, bad)
	}
	a.Reconfigure(unreachable)
	a.MustDel()
	if a.HasLink("in1", "") || b.HasLink("in2", "") {
		t.Errorf("link ends left after a DEL without the agent: %v / %v", a.Links(), b.Links())
	}
	b.MustDel() // starts an agent, which finishes a's DEL too
	if !testcluster.WaitFor(15*time.Second, func() bool { return len(c.Records()) == 0 }) {
		t.Errorf("records left: %v\n%s", c.Records(), h.LogTail())
	}
	c.AssertNoLeftovers(a, b, d)
}
