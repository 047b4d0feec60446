package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// TestThousandPendingPodsAreOneProcessWithOneEtcdConnection records 1,000
// ratchet pods on one host whose peers never come (their state as ADD
// leaves it: record, pod state, a live netns) and starts the agent: one
// process, one etcd connection, bounded memory.
func TestThousandPendingPodsAreOneProcessWithOneEtcdConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	const n = 1000
	c := testcluster.New(t, "v3", 1)
	h := c.Hosts[0]
	podNS := testenv.NewNS(t)
	var st syscall.Stat_t
	if err := syscall.Stat(podNS.Path(), &st); err != nil {
		t.Fatal(err)
	}
	stateDir := agentapi.StateDir(filepath.Join(h.Dir, "cni"))
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		recordPendingPod(t, c, h, podNS.Path(), st.Ino, i)
	}
	before := h.Fwd.Conns.Load()
	h.StartAgent()
	var stats store.AgentRecord
	if !testcluster.WaitFor(120*time.Second, func() bool {
		stats, _, _ = store.GetJSON[store.AgentRecord](ctx, c.KV, c.Keys.Agent(h.Name))
		return stats.Pods == n && stats.Pending == n
	}) {
		t.Fatalf("agent record %+v, want %d pods with a pending link each\n%s", stats, n, h.LogTail())
	}
	pids := h.AgentPIDs()
	if len(pids) != 1 {
		t.Fatalf("agents: %v, want one process", pids)
	}
	rss := vmRSS(t, pids[0])
	conns := h.Fwd.Conns.Load() - before
	t.Logf("%d pending pods: %d agent process, RSS %d MiB, %d etcd connection(s)", n, len(pids), rss>>20, conns)
	if rss > 100<<20 {
		t.Errorf("agent RSS %d MiB, want ≤ 100 MiB", rss>>20)
	}
	if conns != 1 {
		t.Errorf("agent opened %d etcd connections, want 1", conns)
	}
	h.KillAgent(syscall.SIGKILL)
	if err := c.KV.DeleteDir(ctx, c.Prefix); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
}

// recordPendingPod leaves what an ADD leaves for pod i, declaring a link to
// a peer that never comes.
func recordPendingPod(t *testing.T, c *testcluster.Cluster, h *testcluster.Host, netns string, ino uint64, i int) {
	t.Helper()
	name, id := fmt.Sprintf("p%d", i), fmt.Sprintf("c%06d", i)
	pod := metadata.Pod{Namespace: "default", Name: name, Primary: true, Links: []metadata.Link{{
		Peer: "absent" + strconv.Itoa(i), IfName: "in1", IP: "10.9.0.1/30", PeerIfName: "in1", PeerIP: "10.9.0.2/30"}}}
	rec := store.PodRecord{Namespace: "default", Name: name, ContainerID: id, Netns: netns, NetnsInode: ino,
		IfName: "eth0", Host: h.Name, HostAddress: h.Addr, Pod: pod, Created: time.Now().UTC()}
	if _, err := store.PutJSON(context.Background(), c.KV, c.Keys.Pod("default", name), rec); err != nil {
		t.Fatal(err)
	}
	state := agentapi.PodState{ContainerID: id, Namespace: "default", Name: name, NetNS: netns, NetnsInode: ino, IfNames: []string{"in1"}}
	data, _ := json.Marshal(state)
	if err := os.WriteFile(agentapi.StatePath(filepath.Join(h.Dir, "cni"), id), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// vmRSS reads a process's resident set size in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}
