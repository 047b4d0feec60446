package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
)

// pendingPods is how many pods (10) leaves waiting on one host, all in one
// namespace (a lab's).
const pendingPods = 1000

// BenchmarkThousandPendingPods measures (10): 1,000 ratchet pods added on
// one host, in one namespace, through the CNI client (8 at a time, in
// batches of 100 whose walls show how ADD scales), each declaring a link
// to a peer that never comes. Once the host's agent reports them all (its
// record in etcd: 1,000 pods, 1,000 pending links): the processes running
// from the CNI bin dir (only the agent should: there are no completers
// any more), the agent's RSS and the TCP connections it holds to the
// host's etcd endpoint (from /proc/<pid>/fd and /proc/<pid>/net/tcp). Then
// all are deleted and the on-demand agent must exit.
func BenchmarkThousandPendingPods(b *testing.B) {
	for range b.N {
		c := testcluster.New(b, "v3", 1)
		c.PairTimeout = "10m" // the links stay pending, not failed, while measured
		h := c.Hosts[0]
		h.Subnet = "10.100.0.0/21" // 2,046 addresses for the master delegate
		pods := make([]*testcluster.Pod, pendingPods)
		for i := range pendingPods {
			name := fmt.Sprintf("w%04d", i)
			c.Announce(&metadata.Pod{Name: name, Links: []metadata.Link{{Peer: fmt.Sprintf("never%04d", i), IfName: "in1",
				IP: fmt.Sprintf("10.90.%d.%d/30", i/64, (i%64)*4+1), PeerIfName: "in1", PeerIP: fmt.Sprintf("10.90.%d.%d/30", i/64, (i%64)*4+2)}}})
			pods[i] = h.NewPod(name)
		}
		start := time.Now()
		var batches []string
		for i := 0; i < len(pods); i += 100 {
			bs := time.Now()
			inParallel(b, pods[i:min(i+100, len(pods))], 8, (*testcluster.Pod).Add)
			batches = append(batches, fmtDur(time.Since(bs)))
		}
		addWall := time.Since(start)
		first, last := batches[0], batches[len(batches)-1]
		var rec store.AgentRecord
		settled := testcluster.WaitFor(90*time.Second, func() bool {
			r, _, err := store.GetJSON[store.AgentRecord](context.Background(), c.KV, c.Keys.Agent(h.Name))
			rec = r
			return err == nil && r.Pods == pendingPods && r.Pending == pendingPods
		})
		reported := time.Since(start)
		pids := h.AgentPIDs()
		procs := processesOf(c.CNI.BinDir)
		if len(pids) != 1 {
			b.Fatalf("agents serving %s: %v, want one; processes from the bin dir: %v\n%s", h.Socket(), pids, procs, h.LogTail())
		}
		rss := procStatus(b, pids[0], "VmRSS")
		hwm := procStatus(b, pids[0], "VmHWM")
		conns := tcpConnsTo(b, pids[0], portOf(b, h.Fwd.Addr))
		record(row{Order: 100, Name: "10. 1,000 pending pods on one host, one namespace: all ADDs, 8 at a time", Value: fmtDur(addWall), N: pendingPods})
		record(row{Order: 101, Name: "10. ADD wall of the first 100 pods, of the last 100", Value: first + ", " + last})
		record(row{Order: 102, Name: "10. the agent's record then (pods, pending links)", Value: fmt.Sprintf("%d, %d after %s", rec.Pods, rec.Pending, fmtDur(reported)),
			Target: "1000, 1000", Met: met(settled)})
		record(row{Order: 103, Name: "10. processes from the CNI bin dir (agent, no completers)", Value: fmt.Sprintf("%d (%s)", len(procs), strings.Join(procs, ", ")),
			Target: "1", Met: met(len(procs) == 1)})
		record(row{Order: 104, Name: "10. agent RSS now (peak since its start)", Value: fmt.Sprintf("%d MiB (%d MiB)", rss>>20, hwm>>20), Target: "≤ 100 MiB", Met: met(hwm <= 100<<20)})
		record(row{Order: 105, Name: "10. agent's TCP connections to etcd", Value: fmt.Sprint(conns), Target: "1", Met: met(conns == 1)})
		start = time.Now()
		inParallel(b, pods, 8, (*testcluster.Pod).Del)
		record(row{Order: 106, Name: "10. all DELs (8 at a time)", Value: fmtDur(time.Since(start)), N: pendingPods})
		start = time.Now()
		exited := testcluster.WaitFor(60*time.Second, func() bool { return len(h.AgentPIDs()) == 0 })
		record(row{Order: 107, Name: "10. last DEL → on-demand agent exited", Value: fmtDur(time.Since(start)), Met: met(exited)})
		c.AssertNothingLeft()
	}
}
