package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/announce"
	"github.com/ratchet-cni/ratchet/internal/ctl"
	"github.com/ratchet-cni/ratchet/internal/metadata"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const pkgCtl = "github.com/ratchet-cni/ratchet/utils/ratchetctl"

// ratchetctl runs the built binary against the cluster's etcd and fails
// the test unless it exits 0.
func ratchetctl(t *testing.T, c *testcluster.Cluster, args ...string) string {
	t.Helper()
	code, out, errOut := testenv.RunEnv(t, testenv.EtcdEnv(c.Etcd.URL, c.API, c.Prefix), testenv.Bin(t, pkgCtl), args...)
	if code != 0 {
		t.Fatalf("ratchetctl %v: exit %d: %s%s", args, code, out, errOut)
	}
	return out
}

const statesTopology = `
links:
  - a: {pod: wired-a, ifname: w1, ip: 198.18.0.1/30}
    b: {pod: wired-b, ifname: w2, ip: 198.18.0.2/30}
  - a: {pod: pend-a, ifname: p1, ip: 198.18.1.1/30}
    b: {pod: pend-b, ifname: p2, ip: 198.18.1.2/30}
  - a: {pod: fail-a, ifname: f1, ip: 198.18.2.1/30}
    b: {pod: fail-b, ifname: f2, ip: 198.18.2.2/30}
`

// statesCluster makes one wired (cross-host), one pending and one failed
// link: wired-a/wired-b both ADDed; pend-a alone; fail-a alone with a 1s
// pairTimeout. It returns the ADDed pods.
func statesCluster(t *testing.T) (*testcluster.Cluster, []*testcluster.Pod) {
	c := testcluster.New(t, "v3", 2)
	file := filepath.Join(t.TempDir(), "states.yaml")
	if err := os.WriteFile(file, []byte(statesTopology), 0o600); err != nil {
		t.Fatal(err)
	}
	ratchetctl(t, c, "populate", "--file", file)
	wa, wb, pa := c.Hosts[0].NewPod("wired-a"), c.Hosts[1].NewPod("wired-b"), c.Hosts[0].NewPod("pend-a")
	c.PairTimeout = "1s"
	fa := c.Hosts[1].NewPod("fail-a")
	pods := []*testcluster.Pod{wa, wb, pa, fa}
	t.Cleanup(func() {
		for _, p := range pods {
			_ = p.Del()
		}
	})
	for _, p := range pods {
		p.MustAdd()
	}
	for pods, want := range map[[4]string]store.LinkState{
		{"wired-a", "w1", "wired-b", "w2"}: store.LinkWired,
		{"fail-a", "f1", "fail-b", "f2"}:   store.LinkFailed,
	} {
		if !testcluster.WaitFor(10*time.Second, func() bool { return c.Link(pods[0], pods[1], pods[2], pods[3]).State == want }) {
			t.Fatalf("link %v not %s: %+v", pods, want, c.Link(pods[0], pods[1], pods[2], pods[3]))
		}
	}
	return c, pods
}

func TestStatusShowsPendingWiredAndFailedLinks(t *testing.T) {
	c, pods := statesCluster(t)
	h0, h1 := c.Hosts[0].Name, c.Hosts[1].Name
	var st ctl.Status
	if err := json.Unmarshal([]byte(ratchetctl(t, c, "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	links := map[string]ctl.LinkStatus{}
	for _, l := range st.Links {
		links[l.A.Pod] = l
	}
	if l := links["wired-a"]; l.State != store.LinkWired || l.Kind != "vxlan" || l.VNI < 4096 || l.A.Host != h0 || l.B.Host != h1 {
		t.Errorf("wired link %+v", l)
	}
	if l := links["pend-a"]; l.State != store.LinkPending || l.A.Host != h0 || l.B.Host != "" || l.A.String() != "pend-a:p1 198.18.1.1/30" {
		t.Errorf("pending link %+v", l)
	}
	if l := links["fail-a"]; l.State != store.LinkFailed || !strings.Contains(l.Reason, "pairTimeout") || l.A.Host != h1 {
		t.Errorf("failed link %+v", l)
	}
	byName := map[string]ctl.PodStatus{}
	for _, p := range st.Pods {
		byName[p.Name] = p
	}
	if p := byName["wired-a"]; p.ContainerID != pods[0].RT.ContainerID || p.Host != h0 || p.HostAddress != c.Hosts[0].Addr ||
		p.Links != 1 || !p.Recorded || !p.Announced || p.Created == nil {
		t.Errorf("pod wired-a %+v", p)
	}
	if p := byName["pend-b"]; p.Recorded || !p.Announced || p.Links != 1 || len(st.Pods) != 6 {
		t.Errorf("pod pend-b %+v (%d pods)", p, len(st.Pods))
	}

	table := ratchetctl(t, c, "status")
	for _, want := range [][]string{
		{"wired-a:w1 198.18.0.1/30", "wired", h0, h1},
		{"pend-a:p1", "pending", h0},
		{"fail-a:f1", "failed", h1, "not wired within pairTimeout"},
		{"wired-a", short(pods[0].RT.ContainerID), h0, c.Hosts[0].Addr},
	} {
		if !tableHasLine(table, want) {
			t.Errorf("no line of the table has all of %q:\n%s", want, table)
		}
	}
	if out := ratchetctl(t, c, "status", "-n", "elsewhere"); strings.Contains(out, "wired-a") {
		t.Errorf("status -n elsewhere shows default's pods:\n%s", out)
	}

	// The ID status prints names the link for `link`.
	name := links["wired-a"].Namespace + "/" + links["wired-a"].ID
	ratchetctl(t, c, "link", "set", name, "--loss", "1%", "--end", "b")
	ratchetctl(t, c, "link", "down", name)
	st = ctl.Status{}
	if err := json.Unmarshal([]byte(ratchetctl(t, c, "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Links {
		switch {
		case l.A.Pod == "wired-a" && (l.Admin != "down" || l.A.Netem != nil || l.B.Netem == nil || l.B.Netem.Loss != "1%"):
			t.Errorf("wired link after link set and down: %+v", l)
		case l.A.Pod != "wired-a" && (l.Admin != "up" || l.A.Netem != nil || l.B.Netem != nil):
			t.Errorf("link %s changed: %+v", l.ID, l)
		}
	}
	ratchetctl(t, c, "link", "up", name)
	ratchetctl(t, c, "link", "clear", name)
	if r := c.Link("wired-a", "w1", "wired-b", "w2"); r.IsDown() || r.B.Netem != nil || !r.NetemSet {
		t.Errorf("wired link after up and clear: %+v", r)
	}
	for _, p := range pods {
		p.MustDel()
	}
	c.AssertNothingLeft()
}

// short is a container ID as the table shows it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func tableHasLine(table string, fields []string) bool {
	for _, line := range strings.Split(table, "\n") {
		ok := true
		for _, f := range fields {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestTopologyDotRendersWithGraphviz(t *testing.T) {
	if _, err := exec.LookPath("dot"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("graphviz's dot is not installed (scripts/install-deps.sh installs it)")
		}
		t.Skip("graphviz's dot is not installed (apt-get install graphviz)")
	}
	c, pods := statesCluster(t)
	dot := ratchetctl(t, c, "topology", "-o", "dot")
	for _, want := range []string{
		`"default/wired-a" -- "default/wired-b"`, `"default/pend-a" -- "default/pend-b"`, `"default/fail-a" -- "default/fail-b"`,
		"color=green", "color=orange", "color=red", "subgraph cluster_0", "host " + c.Hosts[1].Name, `"default/pend-b" [label="pend-b", style="rounded,dashed"`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %q:\n%s", want, dot)
		}
	}
	cmd := exec.Command("dot", "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	var svg, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &svg, &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v: %s\n%s", err, errOut.String(), dot)
	}
	if dir := os.Getenv("RATCHET_TEST_KEEP_DOT"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "topology.dot"), []byte(dot), 0o644)
	}
	text := strings.ReplaceAll(svg.String(), "&#45;", "-") // SVG escapes '-'
	for _, want := range []string{"<svg", "wired-a", "fail-b", "pend-a:p1 198.18.1.1/30"} {
		if !strings.Contains(text, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	for _, p := range pods {
		p.MustDel()
	}
	c.AssertNothingLeft()
}

// seedPairCluster announces the seed pair with populate and ADDs it on one
// host.
func seedPairCluster(t *testing.T) (*testcluster.Cluster, *testcluster.Pod, *testcluster.Pod) {
	c := testcluster.New(t, "v2", 1)
	ratchetctl(t, c, "populate", "primary")
	ratchetctl(t, c, "populate", "pair")
	a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[0].NewPod("pair-pod")
	a.MustAdd()
	b.MustAdd()
	if err := a.Ping("192.168.2.101"); err != nil {
		t.Fatalf("populated pair not wired: %v\n%s", err, c.Hosts[0].LogTail())
	}
	return c, a, b
}

// skipShort skips tests that build binaries or start etcd under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds ratchetctl and starts etcd")
	}
}

func exists(t *testing.T, c *testcluster.Cluster, key string) bool {
	t.Helper()
	_, err := c.KV.Get(context.Background(), key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestDeletePodReleasesItsLinksThenDeletesThem(t *testing.T) {
	c, a, b := seedPairCluster(t)
	k := c.Keys
	out := ratchetctl(t, c, "delete", "pair-pod")
	if exists(t, c, k.Pod("default", "pair-pod")) || exists(t, c, k.Announce("default", "pair-pod")) {
		t.Errorf("pair-pod's records left:\n%s", out)
	}
	if rec := c.Link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkPending || !strings.Contains(out, "pending") {
		t.Errorf("link after deleting pair-pod: %+v\n%s", rec, out)
	}
	before := c.Records()
	if out := ratchetctl(t, c, "delete", "--dry-run", "primary-pod"); !strings.Contains(out, "would delete link") ||
		!reflect.DeepEqual(before, c.Records()) {
		t.Errorf("dry run changed records or said nothing:\n%s", out)
	}
	ratchetctl(t, c, "delete", "-n", "default", "primary-pod")
	if r := c.Records(); len(r) != 0 || exists(t, c, k.Announce("default", "primary-pod")) {
		t.Errorf("records left: %v", r)
	}
	a.MustDel()
	b.MustDel()
	c.AssertNothingLeft()
}

func TestGCCollectsPodsWhoseNetnsIsGone(t *testing.T) {
	c, a, b := seedPairCluster(t)
	h := c.Hosts[0].Name
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(b.Netns)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	before := c.Records()
	if out := ratchetctl(t, c, "gc", "--host", h, "--dry-run"); !strings.Contains(out, "would collect default/pair-pod") ||
		!reflect.DeepEqual(before, c.Records()) {
		t.Errorf("gc --dry-run:\n%s", out)
	}
	if out := ratchetctl(t, c, "gc", "--host", "another-host"); !strings.Contains(out, "nothing to collect") {
		t.Errorf("gc of another host:\n%s", out)
	}
	out := ratchetctl(t, c, "gc", "--host", h)
	k := c.Keys
	if exists(t, c, k.Pod("default", "pair-pod")) || !exists(t, c, k.Pod("default", "primary-pod")) ||
		!exists(t, c, k.Announce("default", "pair-pod")) {
		t.Errorf("gc removed the wrong records:\n%s", out)
	}
	if rec := c.Link("primary-pod", "in1", "pair-pod", "in2"); rec.State != store.LinkPending {
		t.Errorf("link after gc: %+v", rec)
	}
	b.MustDel()
	a.MustDel()
	c.AssertNothingLeft()
}

func TestSeedScriptsPopulateAndDelete(t *testing.T) {
	skipShort(t)
	e := testenv.StartEtcd(t)
	prefix := "/" + testenv.UniqueName("sc")
	kv, err := store.New(store.Config{Endpoints: []string{e.URL}, API: "v2", Prefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	env := append(testenv.EtcdEnv(e.URL, "v2", prefix), "RATCHETCTL="+testenv.Bin(t, pkgCtl))
	for _, s := range []struct{ script, label, pod string }{
		{"etcd_populator.sh", "primary.label", "primary-pod"},
		{"pair_etcd_populator.sh", "pair.label", "pair-pod"},
	} {
		if code, out, errOut := testenv.RunEnv(t, env, filepath.Join("..", s.script), "0123456789abcdef"); code != 0 {
			t.Fatalf("%s: exit %d: %s%s", s.script, code, out, errOut)
		}
		labels, err := metadata.ReadLabelFile(filepath.Join("..", "..", "scripts", s.label))
		if err != nil {
			t.Fatal(err)
		}
		labels[metadata.KeyTargetContainer] = "0123456789abcdef"
		want, err := announce.FromLabels(labels, "eth0", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := store.GetAnnounce(context.Background(), kv, store.Keys{Prefix: prefix}, "default", s.pod)
		if err != nil || !reflect.DeepEqual(got, want.Labels) {
			t.Errorf("%s wrote %v (%v), want %v", s.script, got, err, want.Labels)
		}
	}
	if code, out, errOut := testenv.RunEnv(t, env, filepath.Join("..", "delete_etcd.sh")); code != 0 {
		t.Fatalf("delete_etcd.sh: exit %d: %s%s", code, out, errOut)
	}
	if kvs, _, err := kv.List(context.Background(), prefix); err != nil || len(kvs) != 0 {
		t.Errorf("left after delete_etcd.sh: %v %v", kvs, err)
	}
}

func TestBadCommandLinesExitTwo(t *testing.T) {
	skipShort(t)
	bin := testenv.Bin(t, pkgCtl)
	env := testenv.EtcdEnv("http://127.0.0.1:9", "v3", "/x")
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"status", "-o", "yaml"}, {"delete"}, {"delete", "--all"}, {"populate", "third"},
		{"status", "--etcd-api", "v4"}, {"topology", "-o", "svg"}, {"link"}, {"link", "flap", "default/a.in1--b.in2"},
		{"link", "set", "default/a.in1--b.in2", "--loss", "abc"}, {"link", "down", "default/a.in1"},
	} {
		if code, _, errOut := testenv.RunEnv(t, env, bin, args...); code != 2 {
			t.Errorf("ratchetctl %v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if code, _, errOut := testenv.RunEnv(t, append(env, "ETCD_TIMEOUT=500ms"), bin, "status"); code != 1 || !strings.Contains(errOut, "127.0.0.1:9") {
		t.Errorf("status against no etcd: exit %d, %s", code, errOut)
	}
}
