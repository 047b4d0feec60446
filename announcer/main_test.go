package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const pkgAnnouncer = "github.com/ratchet-cni/ratchet/announcer"

// announcer runs the built binary with env (and no other variable) and
// returns its exit code, stdout and stderr.
func announcer(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return testenv.RunEnv(t, env, testenv.Bin(t, pkgAnnouncer), args...)
}

// sidecar is the first ratchet's announcer sidecar environment for the seed
// pair (on test addresses).
func sidecar(primary bool) []string {
	if primary {
		return []string{"POD_NAME=primary-pod", "TARGET_POD=primary-pod", "TARGET_CONTAINER=primary-pod",
			"PUBLIC_IP=1.1.1.1", "LOCAL_IP=192.0.2.100", "LOCAL_IFNAME=in1", "PAIR_NAME=pair-pod",
			"PAIR_IP=192.0.2.101", "PAIR_IFNAME=in2", "PRIMARY=true"}
	}
	return []string{"POD_NAME=pair-pod", "LOCAL_IP=192.0.2.101", "LOCAL_IFNAME=in2", "PAIR_NAME=primary-pod",
		"PAIR_IP=192.0.2.100", "PAIR_IFNAME=in1", "PRIMARY=false"}
}

func TestSidecarAnnouncedPairIsWired(t *testing.T) {
	testenv.ForEachAPI(t, func(t *testing.T, api string) {
		c := testcluster.New(t, api, 2)
		for _, primary := range []bool{true, false} {
			env := append(testenv.EtcdEnv(c.Etcd.URL, api, c.Prefix), sidecar(primary)...)
			if code, out, errOut := announcer(t, env); code != 0 || !strings.Contains(out, "created") {
				t.Fatalf("announcer exit %d: %s%s", code, out, errOut)
			}
		}
		a, b := c.Hosts[0].NewPod("primary-pod"), c.Hosts[1].NewPod("pair-pod")
		a.MustAdd()
		b.MustAdd()
		if !testcluster.WaitFor(10*time.Second, func() bool { return a.Ping("192.0.2.101") == nil }) {
			t.Fatalf("primary-pod cannot ping pair-pod over in1\n%s", c.Hosts[0].LogTail())
		}
		if !b.HasLink("in2", "192.0.2.101/24") {
			t.Errorf("pair-pod has no in2 192.0.2.101/24")
		}
		a.MustDel()
		b.MustDel()
		c.AssertNothingLeft()
	})
}

// chainTopology returns the router chain's topology file
// (testenv.RouterChainFile) and its content: centosa and quagga-a go on
// host 0, quagga-b and centosb on host 1; each pod is the b end of at most
// one link.
func chainTopology(t *testing.T) (file, content string) {
	t.Helper()
	file = testenv.RepoFile(testenv.RouterChainFile)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return file, string(data)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTopologyFileWiresRouterChain(t *testing.T) {
	c := testcluster.New(t, "v3", 2)
	file, _ := chainTopology(t)
	if code, out, errOut := announcer(t, testenv.EtcdEnv(c.Etcd.URL, "v3", c.Prefix), "--file", file); code != 0 {
		t.Fatalf("announcer exit %d: %s%s", code, out, errOut)
	}
	specs := testcluster.RouterChain(t)
	pods := make([]*testcluster.Pod, len(specs))
	for i, m := range specs {
		pods[i] = c.Hosts[i/2].NewPod(m.Name) // centosa, quagga-a on host 0
	}
	for _, i := range []int{3, 0, 2, 1} {
		pods[i].MustAdd()
	}
	testcluster.AssertLinksPing(t, specs, pods, 10*time.Second)
	if rec := c.Link("quagga-a", "in2", "quagga-b", "in1"); rec.VNI == 0 || rec.MTU != 1400 {
		t.Errorf("cross-host link %+v, want a vxlan with MTU 1400", rec)
	}
	for _, p := range pods {
		p.MustDel()
	}
	c.AssertNothingLeft()
}

// listPrefix returns every key under prefix.
func listPrefix(t *testing.T, kv store.Store, prefix string) map[string]int64 {
	t.Helper()
	kvs, _, err := kv.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range kvs {
		out[e.Key] = e.Version
	}
	return out
}

// newEtcd starts an embedded etcd (no root needed) and a v3 store on a
// fresh prefix.
func newEtcd(t *testing.T) (url, prefix string, kv store.Store) {
	t.Helper()
	skipShort(t)
	e := testenv.StartEtcd(t)
	prefix = "/" + testenv.UniqueName("an")
	kv, err := store.New(store.Config{Endpoints: []string{e.URL}, API: "v3", Prefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	return e.URL, prefix, kv
}

func TestBadTopologyIsRefusedAndNothingIsWritten(t *testing.T) {
	url, prefix, kv := newEtcd(t)
	_, chain := chainTopology(t)
	bad := strings.Replace(chain, "ip: 203.0.113.2/30", "ip: 203.0.113.300/30", 1)
	tests := []struct {
		name, content string
		want          []string
	}{
		{"bad address", bad, []string{"pod default/quagga-b", "links[1].b.ip", "203.0.113.300/30"}},
		{"ifname clash", chain + "  - a: {pod: centosb, ifname: in1}\n    b: {pod: centosa, ifname: x}\n",
			[]string{"pod default/centosb", "links[3].a.ifname", "already used by links[2].b.ifname"}},
		{"duplicate pod", strings.Replace(chain, "links:\n", "  - name: centosa\nlinks:\n", 1),
			[]string{"pod default/centosa", "pods[4].name", "duplicate pod"}},
		{"unknown key", chain + "extra: 1\n", []string{fmt.Sprintf("line %d", strings.Count(chain, "\n")+1), "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "bad.yaml", tt.content)
			code, out, errOut := announcer(t, testenv.EtcdEnv(url, "v3", prefix), "--file", file)
			if code != 2 {
				t.Errorf("exit %d, want 2: %s%s", code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if left := listPrefix(t, kv, prefix); len(left) > 0 {
				t.Errorf("written despite bad input: %v", left)
			}
		})
	}
}

func TestRerunChangesNothingAndDeleteRemovesItsRecords(t *testing.T) {
	url, prefix, kv := newEtcd(t)
	env := testenv.EtcdEnv(url, "v3", prefix)
	file, _ := chainTopology(t)
	if code, out, errOut := announcer(t, env, "--file", file); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	before := listPrefix(t, kv, prefix)
	code, out, _ := announcer(t, env, "--file", file)
	if after := listPrefix(t, kv, prefix); code != 0 || len(after) != 4 || strings.Contains(out, "created") || !sameVersions(before, after) {
		t.Fatalf("second run (exit %d) changed records: %v -> %v\n%s", code, before, after, out)
	}
	// Someone else's change to centosa's record is kept by --delete...
	k := store.Keys{Prefix: prefix}
	if _, err := store.PutJSON(context.Background(), kv, k.Announce("default", "centosa"), map[string]string{"ratchet": "true"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := announcer(t, env, "--file", file, "--delete")
	if left := listPrefix(t, kv, prefix); code != 0 || len(left) != 1 || !strings.Contains(out, "kept") {
		t.Fatalf("--delete (exit %d) left %v\n%s%s", code, left, out, errOut)
	}
	// ... and removed by --delete --force.
	code, out, errOut = announcer(t, env, "--file", file, "--delete", "--force")
	if left := listPrefix(t, kv, prefix); code != 0 || len(left) != 0 {
		t.Fatalf("--delete --force (exit %d) left %v\n%s%s", code, left, out, errOut)
	}
}

// skipShort skips tests that build binaries or start etcd under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the announcer and starts etcd")
	}
}

func sameVersions(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestWaitingSidecarRemovesItsRecordOnSIGTERM(t *testing.T) {
	url, prefix, kv := newEtcd(t)
	cmd := exec.Command(testenv.Bin(t, pkgAnnouncer), "--wait", "--delete-on-exit")
	cmd.Env = append(testenv.EtcdEnv(url, "v3", prefix), sidecar(true)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if !testcluster.WaitFor(10*time.Second, func() bool { return len(listPrefix(t, kv, prefix)) == 1 }) {
		t.Fatalf("record not announced: %s", out.String())
	}
	select {
	case err := <-done:
		t.Fatalf("announcer --wait exited early: %v: %s", err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v: %s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("announcer did not stop on SIGTERM: %s", out.String())
	}
	if left := listPrefix(t, kv, prefix); len(left) != 0 {
		t.Errorf("record left after --delete-on-exit: %v", left)
	}
}

func TestUnreachableEtcdExitsOneNamingTheEndpoint(t *testing.T) {
	skipShort(t)
	env := append(testenv.EtcdEnv("http://127.0.0.1:9", "v3", "/x"), "ETCD_TIMEOUT=500ms")
	code, _, errOut := announcer(t, append(env, sidecar(true)...))
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:9") {
		t.Fatalf("exit %d, stderr %q: want 1 naming the endpoint", code, errOut)
	}
}
