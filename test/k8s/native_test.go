package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Kubernetes-native proof (issue 13), on its own cluster: links
// declared in pod annotations (examples/k8s/pods-annotated.yaml), the
// announcer sidecar working from the pods' first start, links added,
// changed and removed on running pods with `kubectl annotate`, a
// StatefulSet's pod re-created under its name and paired again, a pod's
// hostPort through the master chain flannel + portmap, plain pods left
// alone and made Ready while ratchet's etcd is down, and the Events
// ratchet puts on the pods.

// TestKubernetesNativeOnRealCluster sets up etcd, the installer and the
// agents as TestExamplesOnRealCluster does, then runs the steps above;
// after the set-up, a failing step does not stop the later ones (each
// makes and deletes its own pods). The last step checks that nothing of
// ratchet is left.
func TestKubernetesNativeOnRealCluster(t *testing.T) {
	e := startCluster(t)
	e.ov.sidecars = true
	runSteps(t, []step{
		{"EtcdStatefulSetRuns", e.etcd, true},
		{"InstallerAndAgentDaemonSetsServeEveryNode", e.installer, true},
		{"NetconfLooksUpKubernetesAndDeclaresCapabilities", e.nativeNetconf, false},
		{"AnnotatedPairAndRouterChainAreWiredAndPing", e.annotated, false},
		{"SidecarAnnouncerWiresFromTheFirstStart", e.sidecars, false},
		{"AnnotateAddsChangesAndRemovesALinkLive", e.annotateLive, false},
		{"StatefulSetPodRecreatedIsPairedAgain", e.statefulSet, false},
		{"HostPortReachableThroughFlannelAndPortmap", e.hostPort, false},
		{"PlainPodsUntouchedAndReadyWithRatchetsEtcdDown", e.plainWithoutEtcd, false},
		{"NothingLeftAfterwards", e.nativeNothingLeft, false},
	})
}

// nativeNetconf checks that the installed netconf looks up the kubernetes
// source and declares the capabilities whose runtimeConfig containerd must
// pass (pod annotations, hostPorts): without them, the steps below fail.
func (e *env) nativeNetconf(t *testing.T) {
	for _, n := range e.c.Nodes {
		data, err := os.ReadFile(n.HostPath("/etc/cni/net.d/00-ratchet.conf"))
		if err != nil {
			t.Fatal(err)
		}
		var conf struct {
			Metadata     []string        `json:"metadata"`
			Capabilities map[string]bool `json:"capabilities"`
		}
		if err := json.Unmarshal(data, &conf); err != nil {
			t.Fatalf("node %s: netconf: %v\n%s", n.Name, err, data)
		}
		if len(conf.Metadata) > 0 && !slices.Contains(conf.Metadata, "kubernetes") {
			t.Errorf("node %s: netconf metadata %v: no \"kubernetes\" source", n.Name, conf.Metadata)
		}
		if !conf.Capabilities["io.kubernetes.cri.pod-annotations"] || !conf.Capabilities["portMappings"] {
			t.Errorf("node %s: netconf capabilities %v: want io.kubernetes.cri.pod-annotations and portMappings", n.Name, conf.Capabilities)
		}
	}
}

// annotated: pods-annotated.yaml applied at once, with no announcer: the
// pair and the chain are wired at the pods' first start, ping over every
// link and end to end over the chain, and each declaring pod has a
// LinkWired Event naming its link.
func (e *env) annotated(t *testing.T) {
	pods := []string{"ann-primary", "ann-pair", "ann-centosa", "ann-quagga-a", "ann-quagga-b", "ann-centosb"}
	t.Cleanup(func() { e.deleteQuietly(t, "pod", pods...) })
	begin := time.Now()
	e.apply(t, "pods-annotated.yaml")
	e.waitReady(t, pods...)
	pair := "ann-pair.in2--ann-primary.in1"
	chain := []string{"ann-centosa.in1--ann-quagga-a.in1", "ann-quagga-a.mid1--ann-quagga-b.mid1", "ann-centosb.in1--ann-quagga-b.in1"}
	s := e.waitWired(t, time.Minute, append([]string{pair}, chain...)...)
	t.Logf("annotated pods: every link wired %v after kubectl apply", time.Since(begin).Round(time.Millisecond))
	a, b := e.podNode(t, "ann-centosa"), e.podNode(t, "ann-quagga-b")
	if e.podNode(t, "ann-quagga-a") != a || e.podNode(t, "ann-centosb") != b || a == b {
		t.Errorf("placement: ann-centosa, ann-quagga-a on %s/%s; ann-quagga-b, ann-centosb on %s/%s",
			a, e.podNode(t, "ann-quagga-a"), b, e.podNode(t, "ann-centosb"))
	}
	for _, l := range s.Links {
		if l.ID == "ann-quagga-a.mid1--ann-quagga-b.mid1" && (l.Kind != "vxlan" || l.VNI == 0) {
			t.Errorf("link %s: kind %s, VNI %d, want a vxlan across the nodes", l.ID, l.Kind, l.VNI)
		}
	}
	e.pingEventually(t, "ann-primary", "192.168.2.101")
	e.pingEventually(t, "ann-pair", "192.168.2.100")
	e.pingEventually(t, "ann-centosa", "192.0.2.2")
	e.pingEventually(t, "ann-quagga-a", "203.0.113.2")
	e.pingEventually(t, "ann-centosb", "192.0.2.5")
	e.pingEventually(t, "ann-centosa", "192.0.2.6") // end to end, over the chain
	e.pingEventually(t, "ann-centosb", "192.0.2.1")
	e.checkFlannelEth0(t, "ann-primary", "in1")
	e.checkFlannelEth0(t, "ann-pair", "in2")
	e.checkFlannelEth0(t, "ann-quagga-a", "in1", "mid1")
	e.checkFlannelEth0(t, "ann-quagga-b", "in1", "mid1")
	e.checkMTU(t, "ann-centosa", "in1", 1500)
	e.waitEvent(t, "ann-primary", "LinkWired", pair)
	e.waitEvent(t, "ann-centosa", "LinkWired", chain[0])
	e.checkAgents(t)
}

// sidecars: the sidecar Pods of announcer-job.yaml created at once (label
// ratchet=true, records written by their sidecars after the ADD): the link
// is wired without a restart, a few seconds after the sidecars start.
func (e *env) sidecars(t *testing.T) {
	pods := []string{"sidecar-primary", "sidecar-pair"}
	t.Cleanup(func() {
		e.deleteQuietly(t, "pod", pods...)
		e.deleteQuietly(t, "job", "ratchet-announce-pair")
	})
	begin := time.Now()
	e.apply(t, "announcer-job.yaml")
	id := "sidecar-pair.in2--sidecar-primary.in1"
	wired := e.waitWired(t, 2*time.Minute, id)
	wiredAt := time.Now()
	e.waitReady(t, pods...)
	var started time.Time
	for _, p := range pods {
		at := e.kubectl(t, "get", "pod", p, "-o", `jsonpath={.status.containerStatuses[?(@.name=="announcer")].state.running.startedAt}`)
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatalf("pod %s: announcer's startedAt %q: %v", p, at, err)
		}
		if ts.After(started) {
			started = ts
		}
	}
	// startedAt has whole seconds: the figure is ±1 s.
	t.Logf("sidecars: link %s wired %v after both announcers started (%v after kubectl apply)",
		id, wiredAt.Sub(started).Round(100*time.Millisecond), wiredAt.Sub(begin).Round(100*time.Millisecond))
	if d := wiredAt.Sub(started); d > time.Minute {
		t.Errorf("link wired %v after the sidecars started, want well under a minute", d)
	}
	for _, l := range wired.Links {
		if l.ID == id && !l.A.Up {
			t.Errorf("link %s: %+v", id, l)
		}
	}
	e.pingEventuallyIn(t, "sidecar-primary", "app", "198.51.100.2")
	e.pingEventuallyIn(t, "sidecar-pair", "app", "198.51.100.1")
	for _, p := range pods {
		if r := e.restarts(t, p); r != 0 {
			t.Errorf("pod %s: %d restarts, want 0", p, r)
		}
	}
	e.waitEvent(t, "sidecar-primary", "LinkWired", id)
}

// annotateLive: two running ratchet pods on different nodes (label
// ratchet=true, nothing declared); `kubectl annotate` adds a link, then
// changes its addresses and MTU, then removes it. The interfaces follow in
// both pods, pings pass, the pods are never restarted, and the declaring
// pod gets the Events LinkWired and LinkRemoved.
func (e *env) annotateLive(t *testing.T) {
	a, b := "live-a", "live-b"
	t.Cleanup(func() { e.deleteQuietly(t, "pod", a, b) })
	e.runPod(t, a, e.c.Nodes[0].Name, map[string]string{"ratchet": "true"}, nil)
	e.runPod(t, b, e.c.Nodes[len(e.c.Nodes)-1].Name, map[string]string{"ratchet": "true"}, nil)
	e.waitReady(t, a, b)
	e.checkFlannelEth0(t, a)
	e.checkFlannelEth0(t, b)
	uidA, uidB := e.uid(t, a), e.uid(t, b)
	id := "live-a.dyn1--live-b.dyn1"

	link := func(ipA, ipB string, mtu int) string {
		l := map[string]any{"peer": b, "ifname": "dyn1", "ip": ipA, "peer_ifname": "dyn1", "peer_ip": ipB}
		if mtu > 0 {
			l["mtu"] = mtu
		}
		j, _ := json.Marshal([]any{l})
		return string(j)
	}
	begin := time.Now()
	e.kubectl(t, "annotate", "pod", a, "ratchet.links="+link("198.51.100.17/30", "198.51.100.18/30", 0), "--overwrite")
	e.waitAddr(t, a, "dyn1", "198.51.100.17/30", time.Minute)
	e.waitAddr(t, b, "dyn1", "198.51.100.18/30", time.Minute)
	t.Logf("annotate: link %s in both pods %v after kubectl annotate", id, time.Since(begin).Round(time.Millisecond))
	e.waitWired(t, 30*time.Second, id)
	e.pingEventually(t, a, "198.51.100.18")
	e.pingEventually(t, b, "198.51.100.17")
	e.waitEvent(t, a, "LinkWired", id)

	begin = time.Now()
	e.kubectl(t, "annotate", "pod", a, "ratchet.links="+link("198.51.100.21/30", "198.51.100.22/30", 1400), "--overwrite")
	e.waitAddr(t, a, "dyn1", "198.51.100.21/30", time.Minute)
	e.waitAddr(t, b, "dyn1", "198.51.100.22/30", time.Minute)
	t.Logf("annotate: link %s changed in both pods %v after kubectl annotate", id, time.Since(begin).Round(time.Millisecond))
	for _, p := range []string{a, b} {
		e.checkMTU(t, p, "dyn1", 1400)
		if out, _ := e.exec(p, "ip", "-o", "-4", "addr", "show", "dev", "dyn1"); strings.Contains(out, "198.51.100.17/") || strings.Contains(out, "198.51.100.18/") {
			t.Errorf("pod %s: the old address is still on dyn1: %s", p, out)
		}
	}
	e.pingEventually(t, a, "198.51.100.22")

	begin = time.Now()
	e.kubectl(t, "annotate", "pod", a, "ratchet.links-")
	for _, p := range []string{a, b} {
		e.waitNoIface(t, p, "dyn1", time.Minute)
		e.checkFlannelEth0(t, p)
	}
	t.Logf("annotate: link %s gone from both pods %v after the annotation's removal", id, time.Since(begin).Round(time.Millisecond))
	e.waitNoLink(t, 30*time.Second, id)
	e.waitEvent(t, a, "LinkRemoved", id)
	if u := e.uid(t, a); u != uidA {
		t.Errorf("pod %s re-created (UID %s → %s)", a, uidA, u)
	}
	if u := e.uid(t, b); u != uidB {
		t.Errorf("pod %s re-created (UID %s → %s)", b, uidB, u)
	}
	for _, p := range []string{a, b} {
		if r := e.restarts(t, p); r != 0 {
			t.Errorf("pod %s: %d restarts, want 0", p, r)
		}
	}
}

// statefulSet: a StatefulSet's pod declares, in its template's
// annotations, a link to a ratchet pod; deleted, it is re-created under the
// same name and paired again.
func (e *env) statefulSet(t *testing.T) {
	node := e.c.Nodes[len(e.c.Nodes)-1].Name
	t.Cleanup(func() {
		e.deleteQuietly(t, "statefulset", "sts-ring")
		e.deleteQuietly(t, "pod", "sts-peer", "sts-ring-0")
	})
	e.runPod(t, "sts-peer", node, map[string]string{"ratchet": "true"}, nil)
	sts := map[string]any{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]any{"name": "sts-ring", "namespace": "default"},
		"spec": map[string]any{
			"serviceName": "sts-ring",
			"replicas":    1,
			"selector":    map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "sts-ring"}},
			"template": map[string]any{
				"metadata": map[string]any{
					"labels": map[string]any{"app.kubernetes.io/name": "sts-ring"},
					"annotations": map[string]any{
						"ratchet": "true", "ratchet.primary": "true",
						"ratchet.local_ifname": "in1", "ratchet.local_ip": "198.51.100.9/30",
						"ratchet.pair_name": "sts-peer", "ratchet.pair_ifname": "in1", "ratchet.pair_ip": "198.51.100.10/30",
					},
				},
				"spec": podSpecFor(node),
			},
		},
	}
	e.applyObject(t, sts)
	e.waitExists(t, "sts-ring-0")
	e.waitReady(t, "sts-peer", "sts-ring-0")
	id := "sts-peer.in1--sts-ring-0.in1"
	e.waitWired(t, time.Minute, id)
	e.pingEventually(t, "sts-ring-0", "198.51.100.10")
	uid := e.uid(t, "sts-ring-0")

	begin := time.Now()
	e.kubectl(t, "delete", "pod", "sts-ring-0", "--wait=true", "--timeout=120s")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		u, _ := e.kubectlErr(t, "get", "pod", "sts-ring-0", "-o", "jsonpath={.metadata.uid}")
		if u != "" && u != uid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sts-ring-0 not re-created by its StatefulSet (UID %q, was %s)", u, uid)
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.waitReady(t, "sts-ring-0")
	e.waitWired(t, time.Minute, id)
	e.waitAddr(t, "sts-ring-0", "in1", "198.51.100.9/30", 30*time.Second)
	t.Logf("statefulset: sts-ring-0 re-created and paired again %v after its deletion", time.Since(begin).Round(time.Millisecond))
	e.pingEventually(t, "sts-ring-0", "198.51.100.10")
	e.pingEventually(t, "sts-peer", "198.51.100.9")
	e.checkFlannelEth0(t, "sts-peer", "in1")
}

// hostPort: a pod's hostPort on one node is reachable from the other node
// at the first node's address (portmap, chained after flannel in the
// master delegate, set the DNAT up).
func (e *env) hostPort(t *testing.T) {
	if len(e.c.Nodes) < 2 {
		t.Fatalf("hostPort needs two nodes, the cluster has %d", len(e.c.Nodes))
	}
	web, from := e.c.Nodes[0], e.c.Nodes[1]
	t.Cleanup(func() { e.deleteQuietly(t, "pod", "hostport-web") })
	spec := podSpecFor(web.Name)
	ctr := spec["containers"].([]any)[0].(map[string]any)
	ctr["command"] = []any{"sh", "-c", "mkdir -p /www && echo ratchet-hostport-ok > /www/index.html && exec httpd -f -p 8080 -h /www"}
	ctr["ports"] = []any{map[string]any{"containerPort": 8080, "hostPort": 18080, "protocol": "TCP"}}
	e.applyObject(t, map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "hostport-web", "namespace": "default"},
		"spec":     spec,
	})
	e.waitReady(t, "hostport-web")
	e.checkFlannelEth0(t, "hostport-web")
	url := fmt.Sprintf("http://%s:18080/", web.IP)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := e.ctx(10 * time.Second)
		out, err := from.Exec(ctx, "curl", "-sS", "--max-time", "3", url)
		cancel()
		if err == nil && strings.Contains(out, "ratchet-hostport-ok") {
			t.Logf("hostPort: %s answers from node %s", url, from.Name)
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := e.ctx(10 * time.Second)
			nat, _ := web.Exec(ctx, "iptables-save", "-t", "nat")
			cancel()
			t.Fatalf("hostPort %s from node %s: %v\n%s\nnode %s nat table:\n%s\n%s", url, from.Name, err, out, web.Name, nat, e.ratchetLogs())
		}
		time.Sleep(time.Second)
	}
}

// plainWithoutEtcd: ratchet's etcd (its own StatefulSet, not the
// apiserver's) is scaled to zero; plain pods on both nodes still become
// Ready (their ADD does not wait on etcd), get flannel's eth0 and nothing
// else. Then etcd comes back and the agents serve again.
func (e *env) plainWithoutEtcd(t *testing.T) {
	var pods []string
	for i := range e.c.Nodes {
		pods = append(pods, fmt.Sprintf("plain-noetcd-%d", i))
	}
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		e.kubectl(t, "-n", "kube-system", "scale", "statefulset/ratchet-etcd", "--replicas=1")
		e.kubectl(t, "-n", "kube-system", "rollout", "status", "statefulset/ratchet-etcd", "--timeout=180s")
	}
	t.Cleanup(func() {
		restore()
		e.deleteQuietly(t, "pod", pods...)
	})
	e.kubectl(t, "-n", "kube-system", "scale", "statefulset/ratchet-etcd", "--replicas=0")
	e.kubectl(t, "-n", "kube-system", "wait", "--for=delete", "pod/ratchet-etcd-0", "--timeout=120s")
	for _, n := range e.c.Nodes {
		ctx, cancel := e.ctx(10 * time.Second)
		out, err := n.Exec(ctx, "curl", "-sS", "--max-time", "2", "http://"+n.IP+":12379/health")
		cancel()
		if err == nil {
			t.Fatalf("ratchet's etcd still answers on node %s after scaling it to zero: %s", n.Name, out)
		}
	}
	begin := time.Now()
	for i, n := range e.c.Nodes {
		e.runPod(t, pods[i], n.Name, nil, nil)
	}
	e.waitReady(t, pods...)
	t.Logf("plain pods Ready %v after creation with ratchet's etcd down", time.Since(begin).Round(time.Millisecond))
	for _, p := range pods {
		e.checkFlannelEth0(t, p)
		if r := e.restarts(t, p); r != 0 {
			t.Errorf("pod %s: %d restarts, want 0", p, r)
		}
	}
	restore()
	e.checkAgents(t)
	e.deleteQuietly(t, "pod", pods...)
}

// nativeNothingLeft: after every step's pods are gone, no pod or link
// record and no link end is left; then the agents, the announced records
// and the workloads go.
func (e *env) nativeNothingLeft(t *testing.T) {
	if left := e.recordsLeft(t, time.Minute); len(left) > 0 {
		t.Errorf("records left after deleting the pods: %v\n%s", left, e.ratchetLogs())
	}
	e.removeRatchet(t)
}
