package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// inParallel runs fn for every pod with at most n at a time and fails on
// the first error.
func inParallel(b *testing.B, pods []*testcluster.Pod, n int, fn func(*testcluster.Pod) error) {
	sem := make(chan struct{}, n)
	errs := make(chan error, len(pods))
	for _, p := range pods {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := fn(p); err != nil {
				errs <- fmt.Errorf("%s: %w", p.Name, err)
				return
			}
			errs <- nil
		}()
	}
	for range pods {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScalePairs measures (5): 100 same-host pairs (200 pods) added 8
// at a time, then all deleted, with the leftovers counted.
func BenchmarkScalePairs(b *testing.B) {
	const pairs = 100
	for range b.N {
		c := testcluster.New(b, "v3", 1)
		h := c.Hosts[0]
		var pods []*testcluster.Pod
		for i := range pairs {
			a, z := fmt.Sprintf("a%d", i), fmt.Sprintf("z%d", i)
			c.Announce(&metadata.Pod{Name: a, Links: []metadata.Link{{Peer: z, IfName: "p0",
				IP: fmt.Sprintf("10.%d.%d.1/30", 50+i/64, (i%64)*4), PeerIfName: "p0", PeerIP: fmt.Sprintf("10.%d.%d.2/30", 50+i/64, (i%64)*4)}}})
			c.Announce(&metadata.Pod{Name: z})
			pods = append(pods, h.NewPod(a), h.NewPod(z))
		}
		rand.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
		start := time.Now()
		inParallel(b, pods, 8, (*testcluster.Pod).Add)
		wall := time.Since(start)
		wired := countWired(b, c)
		start = time.Now()
		inParallel(b, pods, 8, (*testcluster.Pod).Del)
		delWall := time.Since(start)
		left := len(c.Records()) + len(testenv.Leases(b, filepath.Join(h.Dir, "ipam")))
		for _, p := range pods {
			left += len(p.Links())
		}
		// The on-demand agent exits once its host has no ratchet pods (after
		// its idle grace); one still running then is a leftover too.
		testcluster.WaitFor(30*time.Second, func() bool { return len(h.AgentPIDs()) == 0 })
		agents := len(h.AgentPIDs())
		left += agents
		record(row{Order: 50, Name: "5. 100 same-host pairs, 8 at a time: ADD wall", Value: fmtDur(wall), N: len(pods)})
		record(row{Order: 51, Name: "5. links wired", Value: fmt.Sprintf("%d/%d", wired, pairs), Target: "100%", Met: met(wired == pairs)})
		record(row{Order: 52, Name: "5. all DEL wall", Value: fmtDur(delWall), N: len(pods)})
		record(row{Order: 53, Name: "5. leftovers (links, leases, records, agents 30 s after)", Value: fmt.Sprintf("%d (%d agents)", left, agents), Target: "0", Met: met(left == 0)})
		c.AssertNothingLeft()
	}
}

// BenchmarkManyLinks measures (6): two pods joined by 1,500 links, declared
// in one announced ratchet.links: time until all are wired (the second ADD
// builds them before returning), pings on a sample, the plugin's max RSS
// and the peak RSS of the agent, which does the wiring now.
func BenchmarkManyLinks(b *testing.B) {
	const n = 1500
	for range b.N {
		c := testcluster.New(b, "v3", 1)
		h := c.Hosts[0]
		var links []metadata.Link
		for i := range n {
			links = append(links, metadata.Link{Peer: "right", IfName: fmt.Sprintf("l%d", i), PeerIfName: fmt.Sprintf("r%d", i),
				IP: fmt.Sprintf("10.%d.%d.%d/30", 100+i/4096, (i/64)%64, (i%64)*4+1), PeerIP: fmt.Sprintf("10.%d.%d.%d/30", 100+i/4096, (i/64)%64, (i%64)*4+2)})
		}
		c.Announce(&metadata.Pod{Name: "left", Links: links})
		c.Announce(&metadata.Pod{Name: "right"})
		left, right := h.NewPod("left"), h.NewPod("right")
		start := time.Now()
		right.MustAdd()
		firstAdd := time.Since(start)
		start = time.Now()
		rss, err := runPlugin(c, left, "ADD")
		if err != nil {
			b.Fatal(err)
		}
		wiredIn := time.Since(start)
		wired := countWired(b, c)
		agentPeak := "no agent"
		if pids := h.AgentPIDs(); len(pids) == 1 {
			agentPeak = fmt.Sprintf("%d MiB", procStatus(b, pids[0], "VmHWM")>>20)
		}
		pinged := 0
		for i := 0; i < n; i += n / 10 {
			if left.Ping(fmt.Sprintf("10.%d.%d.%d", 100+i/4096, (i/64)%64, (i%64)*4+2)) == nil {
				pinged++
			}
		}
		start = time.Now()
		left.MustDel()
		right.MustDel()
		del := time.Since(start)
		record(row{Order: 60, Name: "6. 1,500 links: first pod's ADD (all pending)", Value: fmtDur(firstAdd)})
		record(row{Order: 61, Name: "6. 1,500 links: second ADD → all wired", Value: fmtDur(wiredIn), Target: "≤ 5 s", Met: met(wiredIn <= 5*time.Second && wired == n)})
		record(row{Order: 62, Name: "6. links wired / sample pinged", Value: fmt.Sprintf("%d/%d, %d/10", wired, n, pinged), Met: met(wired == n && pinged == 10)})
		record(row{Order: 63, Name: "6. max RSS of the (thin) plugin process for that ADD", Value: fmt.Sprintf("%.0f MiB", rss)})
		record(row{Order: 64, Name: "6. peak RSS of the agent that wired the 1,500 links", Value: agentPeak})
		record(row{Order: 65, Name: "6. DEL of both pods", Value: fmtDur(del)})
		c.AssertNothingLeft()
	}
}

// BenchmarkRingAcrossHosts measures (7): a ring of 150 pods and 150 links
// over 3 simulated hosts, added 8 at a time in random order: time until
// every link is wired.
func BenchmarkRingAcrossHosts(b *testing.B) {
	const n = 150
	for range b.N {
		c := testcluster.New(b, "v3", 3)
		pods := make([]*testcluster.Pod, n)
		for i := range n {
			next := (i + 1) % n
			c.Announce(&metadata.Pod{Name: fmt.Sprintf("r%d", i), Links: []metadata.Link{{
				Peer: fmt.Sprintf("r%d", next), IfName: "east", PeerIfName: "west",
				IP: fmt.Sprintf("10.60.%d.%d/30", i/64, (i%64)*4+1), PeerIP: fmt.Sprintf("10.60.%d.%d/30", i/64, (i%64)*4+2)}}})
			pods[i] = c.Hosts[i%3].NewPod(fmt.Sprintf("r%d", i))
		}
		order := append([]*testcluster.Pod(nil), pods...)
		rand.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		start := time.Now()
		inParallel(b, order, 8, (*testcluster.Pod).Add)
		added := time.Since(start)
		for countWired(b, c) < n && time.Since(start) < 60*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
		full := time.Since(start)
		wired := countWired(b, c)
		record(row{Order: 70, Name: "7. 150-pod ring on 3 hosts: all ADDs returned", Value: fmtDur(added), N: n})
		record(row{Order: 71, Name: "7. 150-pod ring on 3 hosts: fully wired", Value: fmtDur(full), Target: "≤ 8 s", Met: met(full <= 8*time.Second && wired == n)})
		inParallel(b, pods, 8, (*testcluster.Pod).Del)
		c.AssertNothingLeft()
	}
}

// runPlugin runs the ratchet binary itself for the pod, as a runtime does,
// and returns the process's max RSS in MiB.
func runPlugin(c *testcluster.Cluster, p *testcluster.Pod, command string) (float64, error) {
	var args []string
	for _, kv := range p.RT.Args {
		args = append(args, kv[0]+"="+kv[1])
	}
	cmd := exec.Command(filepath.Join(c.CNI.BinDir, "ratchet"))
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+p.RT.ContainerID, "CNI_NETNS="+p.Netns,
		"CNI_IFNAME="+p.RT.IfName, "CNI_ARGS="+strings.Join(args, ";"), "CNI_PATH="+c.CNI.BinDir)
	cmd.Stdin = bytes.NewReader(p.Conf.Bytes)
	var out []byte
	err := p.InHost(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ratchet %s %s: %w: %s", command, p.Name, err, out)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return 0, nil
	}
	return float64(ru.Maxrss) / 1024, nil
}
