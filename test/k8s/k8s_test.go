package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/k8senv"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// SuiteEnv is set by `make test-k8s`; without it the suite skips (outside
// CI) or fails (CI set), so that `go test ./...` never starts a cluster.
const SuiteEnv = "RATCHET_K8S_SUITE"

// requireSuite skips or fails t when the suite was not asked for.
func requireSuite(t *testing.T) {
	t.Helper()
	if os.Getenv(SuiteEnv) != "" {
		testenv.RequireRoot(t)
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("real-cluster suite started without %s=1 under CI: run it with make test-k8s", SuiteEnv)
	}
	t.Skipf("real-cluster suite: run `make test-k8s` as root (sets %s=1)", SuiteEnv)
}

// env is one run of the suite: the cluster and the overlay, the agents
// last seen serving the nodes, and the nodes where the plugin is expected
// to have started an agent on demand.
type env struct {
	t        *testing.T
	c        *k8senv.Cluster
	ov       *overlay
	agents   map[string]agent
	onDemand map[string]bool
}

func (e *env) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// kubectl runs kubectl and fails the test on error.
func (e *env) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := e.ctx(4 * time.Minute)
	defer cancel()
	out, err := e.c.Kubectl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apply applies one example (through the overlay) with kubectl.
func (e *env) apply(t *testing.T, file string, args ...string) {
	t.Helper()
	ctx, cancel := e.ctx(2 * time.Minute)
	defer cancel()
	if out, err := e.c.KubectlIn(ctx, e.ov.manifest(t, file), append([]string{"apply", "-f", "-"}, args...)...); err != nil {
		t.Fatalf("apply %s: %v\n%s", file, err, out)
	}
}

// waitReady waits until the pods are Ready.
func (e *env) waitReady(t *testing.T, pods ...string) {
	t.Helper()
	start := time.Now()
	args := []string{"wait", "--for=condition=Ready", "--timeout=180s"}
	for _, p := range pods {
		args = append(args, "pod/"+p)
	}
	ctx, cancel := e.ctx(4 * time.Minute)
	defer cancel()
	if _, err := e.c.Kubectl(ctx, args...); err != nil {
		desc, _ := e.c.Kubectl(ctx, append([]string{"describe", "pod"}, pods...)...)
		t.Fatalf("pods %v not Ready: %v\n%s\n%s", pods, err, desc, e.ratchetLogs())
	}
	t.Logf("pods %v Ready in %v", pods, time.Since(start).Round(time.Millisecond))
}

// exec runs a command in a pod's container.
func (e *env) exec(pod string, argv ...string) (string, error) {
	ctx, cancel := e.ctx(time.Minute)
	defer cancel()
	return e.c.Kubectl(ctx, append([]string{"exec", pod, "--"}, argv...)...)
}

// ping pings addr from pod and fails the test when no answer comes.
func (e *env) ping(t *testing.T, pod, addr string) {
	t.Helper()
	if out, err := e.exec(pod, "ping", "-c", "3", "-i", "0.2", "-W", "2", addr); err != nil {
		t.Errorf("ping %s from %s: %v\n%s", addr, pod, err, out)
	}
}

// ratchetctl runs ratchetctl against ratchet's etcd (from the first node).
func (e *env) ratchetctl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := e.ctx(time.Minute)
	defer cancel()
	argv := append([]string{filepath.Join(e.c.RatchetBin, "ratchetctl"), "--etcd-endpoints", e.ov.etcdEndpoints}, args...)
	out, err := e.c.Nodes[0].Exec(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// status is `ratchetctl status -o json`.
type status struct {
	Pods []struct {
		Namespace, Name, Host string
		Recorded, Announced   bool
	} `json:"pods"`
	Links []struct {
		ID, State, Kind, Reason string
		VNI                     uint32
		A, B                    struct {
			Pod, IfName, Host string
			Up                bool
		}
	} `json:"links"`
}

func (e *env) status(t *testing.T) status {
	t.Helper()
	var s status
	out := e.ratchetctl(t, "status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("ratchetctl status: %v\n%s", err, out)
	}
	return s
}

// ratchetLogs returns the end of ratchet's log on every node (the plugin's
// and on-demand agents') and of the agent pods' logs.
func (e *env) ratchetLogs() string {
	var b strings.Builder
	for _, n := range e.c.Nodes {
		data, _ := os.ReadFile(n.HostPath("/var/log/ratchet.log"))
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- ratchet log of %s\n%s\n", n.Name, data)
	}
	ctx, cancel := e.ctx(30 * time.Second)
	defer cancel()
	out, err := e.c.Kubectl(ctx, "-n", agentNamespace, "logs", "-l", agentSelector, "--prefix", "--tail=30")
	fmt.Fprintf(&b, "--- agent pods' logs (%v)\n%s\n", err, out)
	return b.String()
}

// podNode returns the node a pod runs on.
func (e *env) podNode(t *testing.T, pod string) string {
	t.Helper()
	return e.kubectl(t, "get", "pod", pod, "-o", "jsonpath={.spec.nodeName}")
}

// checkFlannelEth0 checks that the pod's IP is on eth0 and in its node's
// flannel subnet, and that it has no other interface than want (and lo).
func (e *env) checkFlannelEth0(t *testing.T, pod string, want ...string) {
	t.Helper()
	node := e.c.Node(e.podNode(t, pod))
	env, err := os.ReadFile(node.HostPath("/run/flannel/subnet.env"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`FLANNEL_SUBNET=(\S+)`).FindStringSubmatch(string(env))
	if m == nil {
		t.Fatalf("no FLANNEL_SUBNET in %s", env)
	}
	_, subnet, err := net.ParseCIDR(m[1])
	if err != nil {
		t.Fatal(err)
	}
	podIP := e.kubectl(t, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
	if ip := net.ParseIP(podIP); ip == nil || !subnet.Contains(ip) {
		t.Errorf("pod %s: IP %q not in node %s's flannel subnet %s", pod, podIP, node.Name, subnet)
	}
	out, err := e.exec(pod, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, " "+podIP+"/") {
		t.Errorf("pod %s: eth0 does not hold %s: %v\n%s", pod, podIP, err, out)
	}
	out, err = e.exec(pod, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.SplitN(line, ": ", 3); len(f) > 1 {
			if name, _, _ := strings.Cut(f[1], "@"); name != "lo" {
				names = append(names, name)
			}
		}
	}
	want = append([]string{"eth0"}, want...)
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("pod %s: interfaces %v, want %v", pod, names, want)
	}
}

// checkWired checks that ratchetctl shows the links, all wired, and
// returns the status.
func (e *env) checkWired(t *testing.T, ids ...string) status {
	t.Helper()
	var s status
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = e.status(t)
		var got, bad []string
		for _, l := range s.Links {
			if !slices.Contains(ids, l.ID) {
				continue
			}
			got = append(got, l.ID)
			if l.State != "wired" || !l.A.Up || !l.B.Up {
				bad = append(bad, fmt.Sprintf("%s: %s %s", l.ID, l.State, l.Reason))
			}
		}
		slices.Sort(got)
		slices.Sort(ids)
		if len(bad) == 0 && slices.Equal(got, ids) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("links %v (not wired: %v), want %v wired\n%s", got, bad, ids, e.ratchetLogs())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
