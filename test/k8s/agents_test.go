package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/k8senv"
)

// The node agents: ratchetd-daemonset.yaml runs one per node, and the
// suite proves that the agent serving a node's socket is that pod's
// container, not one the plugin started on demand.

const (
	agentNamespace = "kube-system"
	agentDaemonSet = "daemonset/ratchetd"
	agentSelector  = "app.kubernetes.io/name=ratchetd"
	// agentSocket is the socket of the netconf (agent.socket) inside a node.
	agentSocket = "/run/ratchet/ratchetd.sock"
	// onDemandNetconf is what the plugin writes beside the socket before
	// it starts an agent on demand (agentapi.Starter.NetconfPath): its
	// absence proves that the plugin never started one on the node.
	onDemandNetconf = "/run/ratchet/ratchetd.netconf"
)

// agent is the ratchetd that serves a node.
type agent struct {
	Node, Pod, ContainerID string
	PID                    int
}

// agentPodList is what the suite reads of `kubectl get pods -o json`.
type agentPodList struct {
	Items []struct {
		Metadata struct {
			Name              string
			DeletionTimestamp string
		}
		Spec struct {
			NodeName string
		}
		Status struct {
			ContainerStatuses []struct {
				ContainerID string
				Ready       bool
			}
		}
	}
}

// pingAgent asks the agent on the node's socket who it is (nil: none
// answers).
func pingAgent(n *k8senv.Node) *agentapi.Info {
	var ans agentapi.Answer
	c := agentapi.NewClient(n.HostPath(agentSocket), 3*time.Second)
	if err := c.Call(context.Background(), agentapi.PathPing, struct{}{}, &ans); err != nil {
		return nil
	}
	return ans.Agent
}

// socketPeerPID is the PID of the process that listens on a unix socket
// (SO_PEERCRED of a connection to it), as the caller's PID namespace sees
// it.
func socketPeerPID(path string) (int, error) {
	conn, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return int(cred.Pid), nil
}

// cmdline is a process's argument vector.
func cmdline(pid int) []string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// running reports whether a process runs: it exists and is no zombie (an
// exited process whose parent has not reaped it yet).
func running(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

// agentRecords is `ratchetctl agents -o json` by host.
func (e *env) agentRecords(t *testing.T) map[string]agentRecord {
	t.Helper()
	var out struct {
		Agents []agentRecord `json:"agents"`
	}
	text := e.ratchetctl(t, "agents", "-o", "json")
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		t.Fatalf("ratchetctl agents: %v\n%s", err, text)
	}
	m := map[string]agentRecord{}
	for _, a := range out.Agents {
		m[a.Host] = a
	}
	return m
}

// agentRecord is one agent of `ratchetctl agents -o json`.
type agentRecord struct {
	Host, Address string
	PID           int
	OnDemand      bool
	Pods, Links   int
}

// checkAgents checks, waiting up to two minutes, that every node is served
// by the ratchetd DaemonSet's pod on it: one running pod per node; the
// process listening on the node's socket (SO_PEERCRED) is the one that
// answers, a resident agent named by the node's name, in that pod's
// container (its cgroup); `ratchetctl agents` announces it; no on-demand
// agent runs on any node, and none was started where none was expected.
// It returns the agents by node and remembers them.
func (e *env) checkAgents(t *testing.T) map[string]agent {
	t.Helper()
	var agents map[string]agent
	var why error
	deadline := time.Now().Add(2 * time.Minute)
	for {
		agents, why = e.findAgents(t)
		if why == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not served by the ratchetd DaemonSet: %v\n%s", why, e.ratchetLogs())
		}
		time.Sleep(time.Second)
	}
	for _, n := range e.c.Nodes {
		for _, pid := range n.Pids() {
			if argv := cmdline(pid); filepath.Base(argv[0]) == "ratchetd" && slices.Contains(argv, "--on-demand") {
				t.Errorf("node %s: an on-demand agent runs: %d %v", n.Name, pid, argv)
			}
		}
		if _, err := os.Stat(n.HostPath(onDemandNetconf)); err == nil && !e.onDemand[n.Name] {
			t.Errorf("node %s: the plugin started an agent on demand (%s exists)", n.Name, onDemandNetconf)
		}
	}
	e.agents = agents
	return agents
}

// findAgents is one try of checkAgents's conditions.
func (e *env) findAgents(t *testing.T) (map[string]agent, error) {
	t.Helper()
	var pods agentPodList
	text := e.kubectl(t, "-n", agentNamespace, "get", "pods", "-l", agentSelector, "-o", "json")
	if err := json.Unmarshal([]byte(text), &pods); err != nil {
		t.Fatalf("ratchetd pods: %v", err)
	}
	records := e.agentRecords(t)
	agents := map[string]agent{}
	for _, n := range e.c.Nodes {
		var a agent
		for _, p := range pods.Items {
			if p.Spec.NodeName != n.Name || p.Metadata.DeletionTimestamp != "" {
				continue
			}
			if a.Pod != "" {
				return nil, fmt.Errorf("node %s: two ratchetd pods, %s and %s", n.Name, a.Pod, p.Metadata.Name)
			}
			a.Node, a.Pod = n.Name, p.Metadata.Name
			if cs := p.Status.ContainerStatuses; len(cs) == 1 && cs[0].Ready {
				_, a.ContainerID, _ = strings.Cut(cs[0].ContainerID, "://")
			}
		}
		if a.Pod == "" || a.ContainerID == "" {
			return nil, fmt.Errorf("node %s: no ready ratchetd pod (%q)", n.Name, a.Pod)
		}
		info := pingAgent(n)
		if info == nil || info.OnDemand || info.Host != n.Name {
			return nil, fmt.Errorf("node %s: agent answering on %s: %+v, want a resident agent of host %s", n.Name, agentSocket, info, n.Name)
		}
		peer, err := socketPeerPID(n.HostPath(agentSocket))
		if err != nil || peer != info.PID {
			return nil, fmt.Errorf("node %s: socket owner %d (%v), but PID %d answers", n.Name, peer, err, info.PID)
		}
		cg, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(peer), "cgroup"))
		if !strings.Contains(string(cg), a.ContainerID) {
			return nil, fmt.Errorf("node %s: agent %d is not in pod %s's container %s: cgroups\n%s", n.Name, peer, a.Pod, a.ContainerID, cg)
		}
		if argv := cmdline(peer); argv[0] != "/ratchetd" || !slices.Contains(argv, "--host="+n.Name) {
			return nil, fmt.Errorf("node %s: agent %d runs %v", n.Name, peer, argv)
		}
		if r, ok := records[n.Name]; !ok || r.PID != peer || r.OnDemand || r.Address != n.IP {
			return nil, fmt.Errorf("node %s: ratchetctl agents shows %+v, want PID %d at %s, resident", n.Name, r, peer, n.IP)
		}
		a.PID = peer
		agents[n.Name] = a
	}
	return agents, nil
}

// agentLog returns `kubectl logs` of an agent pod, decoded line by line
// (JSON; other lines are an error).
func (e *env) agentLog(t *testing.T, pod string) []map[string]any {
	t.Helper()
	text := e.kubectl(t, "-n", agentNamespace, "logs", pod)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("agent pod %s: log line is not JSON: %q", pod, l)
			continue
		}
		lines = append(lines, m)
	}
	return lines
}

// logged reports whether a line has every field of want.
func logged(lines []map[string]any, want map[string]any) bool {
	return slices.ContainsFunc(lines, func(l map[string]any) bool {
		for k, v := range want {
			if l[k] != v {
				return false
			}
		}
		return true
	})
}

// checkPairedLogged checks that the agent pod of each pod's node logged
// pairing the pod (kubectl logs: the agent logs JSON to stderr).
func (e *env) checkPairedLogged(t *testing.T, pods ...string) {
	t.Helper()
	logs := map[string][]map[string]any{}
	for _, p := range pods {
		a, ok := e.agents[e.podNode(t, p)]
		if !ok {
			t.Fatalf("no agent known on pod %s's node", p)
		}
		if logs[a.Pod] == nil {
			logs[a.Pod] = e.agentLog(t, a.Pod)
		}
		if !logged(logs[a.Pod], map[string]any{"msg": "paired", "pod": "default/" + p, "component": "ratchetd"}) {
			t.Errorf("kubectl logs %s: no \"paired\" line for pod %s", a.Pod, p)
		}
	}
}

// ifindexes are the interface indexes of the example pods' link ends: an
// end that an agent rebuilt instead of adopting gets a new one.
func (e *env) ifindexes(t *testing.T) map[string]string {
	t.Helper()
	ends := []struct {
		pod    string
		ifname []string
	}{{"primary-pod", []string{"in1"}}, {"pair-pod", []string{"in2"}}, {"centosa", []string{"in1"}},
		{"quagga-a", []string{"in1", "mid1"}}, {"quagga-b", []string{"mid1", "in1"}}, {"centosb", []string{"in1"}}}
	m := map[string]string{}
	for _, end := range ends {
		argv := []string{"cat"}
		for _, ifname := range end.ifname {
			argv = append(argv, "/sys/class/net/"+ifname+"/ifindex")
		}
		out, err := e.exec(end.pod, argv...)
		idx := strings.Fields(out)
		if err != nil || len(idx) != len(end.ifname) {
			t.Fatalf("ifindex of %s's %v: %v\n%s", end.pod, end.ifname, err, out)
		}
		for i, ifname := range end.ifname {
			m[end.pod+"."+ifname] = idx[i]
		}
	}
	return m
}

// checkLinksKept checks that every example link is wired, carries pings,
// and has the link ends it had before (adopted, not rebuilt).
func (e *env) checkLinksKept(t *testing.T, before map[string]string) {
	t.Helper()
	e.checkWired(t, "pair-pod.in2--primary-pod.in1", "centosa.in1--quagga-a.in1",
		"quagga-a.mid1--quagga-b.mid1", "centosb.in1--quagga-b.in1")
	e.ping(t, "primary-pod", "192.168.2.101")
	e.ping(t, "centosa", "192.0.2.6") // end to end, over the cross-node link
	e.ping(t, "centosb", "192.0.2.1")
	for end, idx := range e.ifindexes(t) {
		if before[end] != idx {
			t.Errorf("link end %s rebuilt (ifindex %s → %s), want it adopted", end, before[end], idx)
		}
	}
}

// agentRestart deletes the agent pods while the example pods run: the
// DaemonSet's new pods serve the nodes and the links stay, untouched.
func (e *env) agentRestart(t *testing.T) {
	before := e.checkAgents(t)
	idx := e.ifindexes(t)
	args := []string{"-n", agentNamespace, "delete", "pod", "--wait=true", "--timeout=120s"}
	for _, a := range before {
		args = append(args, a.Pod)
	}
	start := time.Now()
	e.kubectl(t, args...)
	e.kubectl(t, "-n", agentNamespace, "rollout", "status", agentDaemonSet, "--timeout=180s")
	after := e.checkAgents(t)
	t.Logf("agents restarted and serving in %v", time.Since(start).Round(time.Millisecond))
	for node, a := range after {
		if a.Pod == before[node].Pod || a.PID == before[node].PID {
			t.Errorf("node %s: agent %+v not replaced (was %+v)", node, a, before[node])
		}
		if !logged(e.agentLog(t, a.Pod), map[string]any{"msg": "agent listening", "onDemand": false}) {
			t.Errorf("kubectl logs %s: no \"agent listening\" line of a resident agent", a.Pod)
		}
	}
	e.checkLinksKept(t, idx)
}

// takeover: the plugin runs on a node whose agent pod is not up (here: the
// DaemonSet deleted with its pods orphaned, then the node's pod deleted)
// and starts an agent on demand; then the DaemonSet is applied again and
// its pod takes the node over from the on-demand agent, keeping the links.
func (e *env) takeover(t *testing.T) {
	n := e.c.Node(e.podNode(t, "quagga-b"))
	before := e.checkAgents(t)
	idx := e.ifindexes(t)
	e.kubectl(t, "-n", agentNamespace, "delete", agentDaemonSet, "--cascade=orphan", "--wait=true", "--timeout=60s")
	e.kubectl(t, "-n", agentNamespace, "delete", "pod", before[n.Name].Pod, "--wait=true", "--timeout=120s")
	if info := pingAgent(n); info != nil {
		t.Fatalf("node %s: an agent still answers after its pod was deleted: %+v", n.Name, info)
	}
	e.onDemand[n.Name] = true
	e.kubectl(t, "run", "plain-c", "--image="+k8senv.BusyboxImage, "--image-pull-policy=IfNotPresent",
		"--restart=Never", "--overrides", `{"spec":{"nodeName":"`+n.Name+`"}}`, "--", "sleep", "100000")
	e.waitReady(t, "plain-c")
	od := pingAgent(n)
	if od == nil || !od.OnDemand {
		t.Fatalf("node %s: after a pod's ADD without the DaemonSet, agent %+v answers, want one started on demand", n.Name, od)
	}
	if argv := cmdline(od.PID); !slices.Contains(argv, "--on-demand") {
		t.Fatalf("node %s: on-demand agent %d runs %v", n.Name, od.PID, argv)
	}
	if _, err := os.Stat(n.HostPath(onDemandNetconf)); err != nil {
		t.Errorf("node %s: on-demand agent running but %s: %v", n.Name, onDemandNetconf, err)
	}
	t.Logf("node %s: the plugin started agent %d on demand", n.Name, od.PID)

	start := time.Now()
	e.apply(t, "ratchetd-daemonset.yaml")
	e.kubectl(t, "-n", agentNamespace, "rollout", "status", agentDaemonSet, "--timeout=180s")
	after := e.checkAgents(t)
	t.Logf("node %s: the DaemonSet's agent serves %v after the DaemonSet was applied", n.Name, time.Since(start).Round(time.Millisecond))
	if running(od.PID) {
		t.Errorf("node %s: on-demand agent %d still runs after the take-over: %v", n.Name, od.PID, cmdline(od.PID))
	}
	lines := e.agentLog(t, after[n.Name].Pod)
	if !logged(lines, map[string]any{"msg": "an on-demand agent hands the socket over", "oldPID": float64(od.PID)}) ||
		!logged(lines, map[string]any{"msg": "took the socket over"}) {
		t.Errorf("kubectl logs %s: no hand-over from agent %d logged", after[n.Name].Pod, od.PID)
	}
	e.checkLinksKept(t, idx)
	e.checkFlannelEth0(t, "plain-c")
}

// deleteAgents deletes the agents' DaemonSet and checks that the agents
// are gone and their records with them.
func (e *env) deleteAgents(t *testing.T) {
	e.kubectl(t, "-n", agentNamespace, "delete", agentDaemonSet, "--cascade=foreground", "--wait=true", "--timeout=120s")
	deadline := time.Now().Add(time.Minute)
	for {
		left := e.agentRecords(t)
		for _, n := range e.c.Nodes {
			if pingAgent(n) != nil {
				left[n.Name+" (answering)"] = agentRecord{}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents left after deleting their DaemonSet: %+v", left)
		}
		time.Sleep(time.Second)
	}
}
