package k8s

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/k8senv"
)

// TestExamplesOnRealCluster applies the examples as a user would, in order
// (etcd, installer with the agents' DaemonSet, announcer Job and the pair,
// the router chain), on two nodes, checks the links, the pods' flannel
// network and that the DaemonSet's agents serve the nodes, restarts the
// agents and lets one take over from an agent started on demand, then
// deletes everything and checks that nothing is left. The steps depend on
// each other: the first failure stops the test.
func TestExamplesOnRealCluster(t *testing.T) {
	e := startCluster(t)
	runSteps(t, []step{
		{"EtcdStatefulSetRuns", e.etcd, true},
		{"InstallerAndAgentDaemonSetsServeEveryNode", e.installer, true},
		{"SeedPairIsWiredAndPings", e.pair, true},
		{"RouterChainCrossesNodesEndToEnd", e.routerChain, true},
		{"PlainPodsGetFlannelOnly", e.plainPods, true},
		{"AgentPodsRestartKeepingTheLinks", e.agentRestart, true},
		{"AgentPodTakesOverFromAnOnDemandAgent", e.takeover, true},
		{"DeletingEverythingLeavesNothing", e.deleteAll, true},
	})
}

// startCluster starts a suite cluster whose host is checked clean after
// its cleanups, and returns the test's environment on it.
func startCluster(t *testing.T) *env {
	requireSuite(t)
	var c *k8senv.Cluster
	before := hostState(t)
	t.Cleanup(func() { checkHostClean(t, c, before) }) // after the cluster's cleanups
	start := time.Now()
	c = k8senv.Start(t, k8senv.Options{})
	t.Logf("cluster up in %v: %v", time.Since(start).Round(time.Millisecond), c.Timings)
	return &env{t: t, c: c, ov: newOverlay(c), onDemand: map[string]bool{}}
}

// step is one subtest of a suite test; stops: its failure ends the test.
type step struct {
	name  string
	fn    func(*testing.T)
	stops bool
}

// runSteps runs the steps in order as subtests, logging each one's time.
func runSteps(t *testing.T, steps []step) {
	for _, s := range steps {
		begin := time.Now()
		ok := t.Run(s.name, s.fn)
		t.Logf("%s: %v", s.name, time.Since(begin).Round(time.Millisecond))
		if !ok && s.stops {
			t.FailNow()
		}
	}
}

func (e *env) etcd(t *testing.T) {
	e.apply(t, "etcd.yaml")
	e.kubectl(t, "-n", "kube-system", "rollout", "status", "statefulset/ratchet-etcd", "--timeout=180s")
}

// installer applies the installer and the agents' DaemonSets together, as
// a user would, and checks the installed files and that the DaemonSet's
// pods serve the nodes.
func (e *env) installer(t *testing.T) {
	e.apply(t, "installer-daemonset.yaml")
	e.apply(t, "ratchetd-daemonset.yaml")
	e.kubectl(t, "-n", "kube-system", "rollout", "status", "daemonset/ratchet-installer", "--timeout=180s")
	e.kubectl(t, "-n", agentNamespace, "rollout", "status", agentDaemonSet, "--timeout=180s")
	for _, n := range e.c.Nodes {
		for _, b := range []string{"ratchet", "ratchetd"} {
			want, err := os.ReadFile(filepath.Join(e.c.RatchetBin, b))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(n.HostPath("/opt/cni/bin/" + b))
			if err != nil || len(got) != len(want) {
				t.Errorf("node %s: /opt/cni/bin/%s not installed (%d bytes, want %d): %v", n.Name, b, len(got), len(want), err)
			}
		}
		conf, err := os.ReadFile(n.HostPath("/etc/cni/net.d/00-ratchet.conf"))
		if err != nil || !strings.Contains(string(conf), `"type": "flannel"`) {
			t.Errorf("node %s: /etc/cni/net.d/00-ratchet.conf: %v\n%s", n.Name, err, conf)
		}
	}
	for node, a := range e.checkAgents(t) {
		t.Logf("node %s: served by agent %d in pod %s", node, a.PID, a.Pod)
	}
}

func (e *env) pair(t *testing.T) {
	e.apply(t, "announcer-job.yaml")
	e.kubectl(t, "wait", "--for=condition=complete", "job/ratchet-announce-pair", "--timeout=180s")
	e.apply(t, "pods-pair.yaml")
	e.waitReady(t, "primary-pod", "pair-pod")
	e.checkWired(t, "pair-pod.in2--primary-pod.in1")
	e.ping(t, "primary-pod", "192.168.2.101")
	e.ping(t, "pair-pod", "192.168.2.100")
	e.checkFlannelEth0(t, "primary-pod", "in1")
	e.checkFlannelEth0(t, "pair-pod", "in2")
	e.checkAgents(t)
	e.checkPairedLogged(t, "primary-pod", "pair-pod")
}

func (e *env) routerChain(t *testing.T) {
	e.apply(t, "pods-router-chain.yaml", "-l", "ratchet.example/step=announce")
	e.kubectl(t, "wait", "--for=condition=complete", "job/ratchet-announce-router-chain", "--timeout=180s")
	e.apply(t, "pods-router-chain.yaml")
	e.waitReady(t, "centosa", "quagga-a", "quagga-b", "centosb")
	a, b := e.podNode(t, "centosa"), e.podNode(t, "quagga-b")
	if e.podNode(t, "quagga-a") != a || e.podNode(t, "centosb") != b || a == b {
		t.Fatalf("placement: centosa, quagga-a on %s/%s; quagga-b, centosb on %s/%s",
			a, e.podNode(t, "quagga-a"), b, e.podNode(t, "centosb"))
	}
	s := e.checkWired(t, "centosa.in1--quagga-a.in1", "quagga-a.mid1--quagga-b.mid1", "centosb.in1--quagga-b.in1")
	for _, l := range s.Links {
		if !strings.HasPrefix(l.ID, "centos") && !strings.HasPrefix(l.ID, "quagga") {
			continue
		}
		cross := l.ID == "quagga-a.mid1--quagga-b.mid1"
		if (l.Kind == "vxlan") != cross || (l.VNI != 0) != cross || (l.A.Host != l.B.Host) != cross {
			t.Errorf("link %s: kind %s, VNI %d, hosts %s/%s", l.ID, l.Kind, l.VNI, l.A.Host, l.B.Host)
		}
	}
	e.ping(t, "centosa", "192.0.2.2")
	e.ping(t, "quagga-a", "203.0.113.2")
	e.ping(t, "centosb", "192.0.2.5")
	e.ping(t, "centosa", "192.0.2.6") // end to end, over the chain
	e.ping(t, "centosb", "192.0.2.1")
	e.checkFlannelEth0(t, "centosa", "in1")
	e.checkFlannelEth0(t, "quagga-a", "in1", "mid1")
	e.checkAgents(t)
	e.checkPairedLogged(t, "centosa", "quagga-a", "quagga-b", "centosb")
}

// plainPods: pods without ratchet metadata on both nodes get eth0 from
// flannel only, and reach each other across the nodes over flannel's vxlan.
func (e *env) plainPods(t *testing.T) {
	var ips []string
	for i, n := range e.c.Nodes {
		name := "plain-" + string(rune('a'+i))
		e.kubectl(t, "run", name, "--image="+k8senv.BusyboxImage, "--image-pull-policy=IfNotPresent",
			"--restart=Never", "--overrides", `{"spec":{"nodeName":"`+n.Name+`"}}`, "--", "sleep", "100000")
		e.waitReady(t, name)
		e.checkFlannelEth0(t, name)
		ips = append(ips, e.kubectl(t, "get", "pod", name, "-o", "jsonpath={.status.podIP}"))
	}
	if len(ips) > 1 {
		e.ping(t, "plain-a", ips[1])
		e.ping(t, "primary-pod", ips[1]) // a ratchet pod's eth0 is flannel's too
	}
	e.checkAgents(t) // plain pods' ADDs asked the DaemonSet's agents too
}

// deleteAll deletes the example pods and checks that ratchet left nothing:
// no pod or link records, no leases, no link ends; then the agents'
// DaemonSet goes, leaving no agent process or record; then the announced
// records and the workloads go too.
func (e *env) deleteAll(t *testing.T) {
	e.kubectl(t, "delete", "pod", "--wait=true", "--timeout=180s",
		"primary-pod", "pair-pod", "centosa", "quagga-a", "quagga-b", "centosb", "plain-a", "plain-b", "plain-c")
	if left := e.recordsLeft(t, 0); len(left) > 0 {
		t.Errorf("records left after deleting the pods: %v\n%s", left, e.ratchetLogs())
	}
	e.removeRatchet(t)
}

// recordsLeft lists the pod records (the announced ones stay until
// removeRatchet) and link records under the prefix, waiting up to wait for
// them to go.
func (e *env) recordsLeft(t *testing.T, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		var left []string
		s := e.status(t)
		for _, p := range s.Pods {
			if p.Recorded {
				left = append(left, "pod "+p.Name)
			}
		}
		for _, l := range s.Links {
			left = append(left, "link "+l.ID)
		}
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(time.Second)
	}
}

// removeRatchet deletes the agents' DaemonSet and checks that the nodes
// keep no agent process, lease or link end; then every record, the jobs,
// the installer and etcd go.
func (e *env) removeRatchet(t *testing.T) {
	e.deleteAgents(t)
	for _, n := range e.c.Nodes {
		e.checkNodeClean(t, n)
	}
	e.ratchetctl(t, "delete", "--all", "--yes")
	if s := e.status(t); len(s.Pods)+len(s.Links) > 0 {
		t.Errorf("records left after ratchetctl delete --all: %+v", s)
	}
	e.kubectl(t, "delete", "job", "--all", "--wait=true", "--timeout=120s")
	e.kubectl(t, "-n", "kube-system", "delete", "daemonset/ratchet-installer", "statefulset/ratchet-etcd", "--wait=true", "--timeout=120s")
}

// nodeLinks are the interfaces a node keeps without pods.
var nodeLinks = []string{"lo", "eth0", "flannel.1", "cni0"}

// checkNodeClean checks a node for leases, link ends and ratchet processes
// (plugins, agents).
func (e *env) checkNodeClean(t *testing.T, n *k8senv.Node) {
	t.Helper()
	leases, _ := filepath.Glob(n.HostPath("/var/lib/cni/networks/*/[0-9]*"))
	if len(leases) > 0 {
		t.Errorf("node %s: leases left: %v", n.Name, leases)
	}
	out, err := n.Exec(t.Context(), "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, ": ", 3)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[1], "@")
		if !slices.Contains(nodeLinks, name) {
			t.Errorf("node %s: link left: %s", n.Name, line)
		}
	}
	for _, pid := range n.Pids() {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); filepath.Base(argv0) == "ratchet" || filepath.Base(argv0) == "ratchetd" {
			t.Errorf("node %s: ratchet process left: %d %s", n.Name, pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

// hostState is what the cluster must leave as it found it: the global
// sysctls and the host netns's links and iptables rules.
type hostStateT struct {
	sysctls  map[string]string
	links    []string
	iptables string
}

func hostState(t *testing.T) hostStateT {
	t.Helper()
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(links)), "\n") {
		if f := strings.SplitN(line, ": ", 3); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	ipt, _ := exec.Command("iptables-save").Output()
	var rules []string
	for _, line := range strings.Split(string(ipt), "\n") {
		if re := regexp.MustCompile(`(?i)kube|flannel|cni-`); re.MatchString(line) {
			rules = append(rules, line)
		}
	}
	return hostStateT{sysctls: k8senv.ReadSysctls(), links: names, iptables: strings.Join(rules, "\n")}
}

// checkHostClean checks, after the cluster's cleanup, that nothing of it is
// left on the machine.
func checkHostClean(t *testing.T, c *k8senv.Cluster, before hostStateT) {
	if c == nil {
		return
	}
	after := hostState(t)
	if !maps.Equal(before.sysctls, after.sysctls) {
		t.Errorf("global sysctls changed: before %v, after %v", before.sysctls, after.sysctls)
	}
	for _, l := range after.links {
		if !slices.Contains(before.links, l) && strings.Contains(l, c.ID) {
			t.Errorf("host link left: %s", l)
		}
	}
	if after.iptables != before.iptables {
		t.Errorf("host iptables changed:\nbefore:\n%s\nafter:\n%s", before.iptables, after.iptables)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), c.Dir) {
		t.Errorf("mounts left under %s", c.Dir)
	}
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("cluster directory %s left", c.Dir)
	}
	netns, _ := exec.Command("ip", "netns", "list").Output()
	for _, n := range c.Nodes {
		if strings.Contains(string(netns), n.NS.Name) {
			t.Errorf("netns %s of node %s left", n.NS.Name, n.Name)
		}
		if cg, _ := filepath.Glob("/sys/fs/cgroup/*/" + n.Name); len(cg) > 0 {
			t.Errorf("cgroups left: %v", cg)
		}
		if pids := n.Pids(); len(pids) > 0 {
			t.Errorf("node %s: processes left: %v", n.Name, pids)
		}
	}
}
