package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testcluster"
	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// BenchmarkCnitoolRatchetVsBareBridge times ADD and DEL through cnitool for
// a bare bridge + host-local netconf and for ratchet delegating to the same
// master, interleaved in one run, and reports the medians and ratios. Run
// with -benchtime 1x; each run does benchRounds of each.
func BenchmarkCnitoolRatchetVsBareBridge(b *testing.B) {
	const benchRounds = 50
	for range b.N {
		pod := testenv.NewNS(b)
		host := testenv.NewNS(b)
		bare, rat, agent := benchConfs(b, host)
		var addBare, delBare, addRat, delRat, addAgent, delAgent []time.Duration
		cnitoolRound(b, host, pod, agent) // starts the agent
		for range benchRounds {
			a, d := cnitoolRound(b, host, pod, bare)
			addBare, delBare = append(addBare, a), append(delBare, d)
			a, d = cnitoolRound(b, host, pod, rat)
			addRat, delRat = append(addRat, a), append(delRat, d)
			a, d = cnitoolRound(b, host, pod, agent)
			addAgent, delAgent = append(addAgent, a), append(delAgent, d)
		}
		mb, mr := median(addBare), median(addRat)
		db, dr := median(delBare), median(delRat)
		b.ReportMetric(float64(mb.Microseconds())/1000, "bare-add-ms")
		b.ReportMetric(float64(mr.Microseconds())/1000, "ratchet-add-ms")
		b.ReportMetric(float64(mr)/float64(mb), "add-ratio")
		b.ReportMetric(float64(db.Microseconds())/1000, "bare-del-ms")
		b.ReportMetric(float64(dr.Microseconds())/1000, "ratchet-del-ms")
		b.ReportMetric(float64(dr)/float64(db), "del-ratio")
		ma, da := median(addAgent), median(delAgent)
		b.ReportMetric(float64(ma.Microseconds())/1000, "agent-add-ms")
		b.ReportMetric(float64(ma)/float64(mb), "agent-add-ratio")
		b.ReportMetric(float64(da)/float64(db), "agent-del-ratio")
	}
}

type benchConf struct{ dir, name string }

// benchConfs writes the netconfs into NETCONFPATH dirs: the bare master,
// ratchet without metadata sources (delegation only), and ratchet asking
// its agent (on an etcd) about a pod that is not a ratchet pod.
func benchConfs(b *testing.B, host *testenv.NS) (bare, rat, agent benchConf) {
	dir := b.TempDir()
	br := testenv.UniqueName("rb")
	master := map[string]any{"type": "bridge", "bridge": br, "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": filepath.Join(dir, "ipam")}}
	bareConf := map[string]any{"cniVersion": "1.0.0", "name": "bare"}
	for k, v := range master {
		bareConf[k] = v
	}
	ratConf := map[string]any{"cniVersion": "1.0.0", "name": "rat", "type": "ratchet",
		"delegates": []any{master}, "metadata": []string{}, "cniDir": filepath.Join(dir, "cache")}
	e := testenv.StartEtcd(b)
	fwd := host.Forward(b, strings.TrimPrefix(e.URL, "http://"))
	sock := filepath.Join(shortDir(b), "ratchetd.sock")
	b.Cleanup(func() {
		for _, pid := range testcluster.AgentPIDs(sock) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	agentConf := map[string]any{"cniVersion": "1.0.0", "name": "agent", "type": "ratchet",
		"delegates": []any{master}, "metadata": []string{"etcd"}, "cniDir": filepath.Join(dir, "cache2"),
		"etcd":  map[string]any{"endpoints": []string{"http://" + fwd.Addr}, "api": "v3", "prefix": "/" + testenv.UniqueName("rb")},
		"agent": map[string]any{"socket": sock}, "host": map[string]any{"name": testenv.UniqueName("h"), "address": "198.51.100.1"}}
	bare = benchConf{filepath.Join(dir, "bare"), "bare"}
	rat = benchConf{filepath.Join(dir, "rat"), "rat"}
	agent = benchConf{filepath.Join(dir, "agent"), "agent"}
	for c, conf := range map[benchConf]any{bare: bareConf, rat: ratConf, agent: agentConf} {
		data, _ := json.Marshal(conf)
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, "10-"+c.name+".conf"), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return bare, rat, agent
}

// shortDir is a temp dir with a short path (for a unix socket).
func shortDir(b *testing.B) string {
	d, err := os.MkdirTemp("", "rtb-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func cnitoolRound(b *testing.B, host, pod *testenv.NS, c benchConf) (add, del time.Duration) {
	bin := testenv.BinDir(b, append(append([]string{}, testenv.ReferencePlugins...), testenv.PkgRatchet, testenv.PkgRatchetd, testenv.PkgCnitool)...)
	run := func(op string) time.Duration {
		cmd := exec.Command("ip", "netns", "exec", host.Name, filepath.Join(bin, "cnitool"), op, c.name, pod.Path())
		cmd.Env = append(os.Environ(), "CNI_PATH="+bin, "NETCONFPATH="+c.dir,
			"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=plain")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cnitool %s %s: %v: %s", op, c.name, err, out)
		}
		return time.Since(start)
	}
	return run("add"), run("del")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
